import { stringify } from 'yaml';

/** Objects as one multi-document YAML file, long lines kept whole (CEL reads better so). */
export function yamlDocuments(objects: readonly object[]): string {
  return objects.map((object) => stringify(object, { lineWidth: 0 })).join('---\n');
}
