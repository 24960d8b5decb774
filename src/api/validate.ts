import type { z } from 'zod';

/** zod issues as one line that names each field, e.g. "spec.owners: at least one owner is required". */
export function describeIssues(error: z.ZodError, root: string): string {
  return error.issues
    .map((issue) => {
      const path = [root, ...issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))]
        .join('.')
        .replace(/\.\[/g, '[');
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}
