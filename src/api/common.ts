import { z } from 'zod';
import { QUANTITY_LIMIT, quantityMillis } from '../k8s/quantity.ts';

// Kubernetes types that several kinds embed.

/** A resource quantity written as a string: 4, 500m, 8Gi, 1.5; below 8Ei, as the API server holds 64 bits. */
export const quantitySchema = z
  .string()
  .max(32)
  .regex(
    /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/,
    'must be a quantity such as 4, 500m or 8Gi',
  )
  .refine(
    (value) => !isPlainQuantity(value) || quantityMillis(value) < quantityMillis(QUANTITY_LIMIT),
    `must be less than ${QUANTITY_LIMIT}`,
  )
  .meta({
    'x-kubernetes-validations': [
      {
        rule: `!isQuantity(self) || quantity(self).isLessThan(quantity('${QUANTITY_LIMIT}'))`,
        message: `must be less than ${QUANTITY_LIMIT}`,
      },
    ],
  });

function isPlainQuantity(value: string): boolean {
  try {
    quantityMillis(value);
    return true;
  } catch {
    return false;
  }
}

// Label keys and values as Kubernetes checks them (IsQualifiedName,
// IsValidLabelValue), so a selector the operator copies into a NetworkPolicy
// can never be refused there, half-way through provisioning. The CRD checks
// the same with CEL's format library, which is the API server's own code.
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_KEY_MESSAGE =
  'must be a label key: an optional DNS subdomain prefix and "/", then at most 63 characters (letters, digits, "-", "_", "."), starting and ending with a letter or digit';
const LABEL_VALUE_MESSAGE =
  'must be a label value: empty, or at most 63 characters (letters, digits, "-", "_", "."), starting and ending with a letter or digit';

export function isLabelKey(key: string): boolean {
  const parts = key.split('/');
  if (parts.length > 2) return false;
  const name = parts.pop() ?? '';
  const prefix = parts.pop();
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

const labelKeySchema = z
  .string()
  .min(1)
  .max(317)
  .refine(isLabelKey, LABEL_KEY_MESSAGE)
  .meta({
    'x-kubernetes-validations': [
      { rule: '!format.qualifiedName().validate(self).hasValue()', message: LABEL_KEY_MESSAGE },
    ],
  });

// A plain pattern, not CEL: values sit three lists deep, and the API server
// would estimate a CEL rule there as too costly.
const LABEL_VALUE_PATTERN = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const labelValueSchema = z.string().max(63).regex(LABEL_VALUE_PATTERN, LABEL_VALUE_MESSAGE);

const SET_OPERATORS = ['In', 'NotIn'];
/** Bounds the cost of the CEL rules over the map, which the API server estimates up front. */
const MAX_MATCH_LABELS = 32;

const labelSelectorRequirementSchema = z
  .object({
    key: labelKeySchema.meta({ description: 'The label key the requirement is about.' }),
    operator: z
      .enum(['In', 'NotIn', 'Exists', 'DoesNotExist'])
      .meta({ description: 'In, NotIn, Exists or DoesNotExist.' }),
    values: z
      .array(labelValueSchema)
      .max(32)
      .optional()
      .meta({ description: 'Values for In and NotIn; none for Exists and DoesNotExist.' }),
  })
  .strict()
  .superRefine((requirement, ctx) => {
    const count = requirement.values?.length ?? 0;
    if (SET_OPERATORS.includes(requirement.operator) && count === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `operator ${requirement.operator} needs at least one value`,
      });
    }
    if (!SET_OPERATORS.includes(requirement.operator) && count > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `operator ${requirement.operator} takes no values`,
      });
    }
  })
  .meta({
    'x-kubernetes-validations': [
      {
        rule: "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        message: 'operators In and NotIn need at least one value',
        fieldPath: '.values',
      },
      {
        rule: "self.operator in ['In', 'NotIn'] || !has(self.values) || size(self.values) == 0",
        message: 'operators Exists and DoesNotExist take no values',
        fieldPath: '.values',
      },
    ],
  });

export const labelSelectorSchema = z
  .object({
    matchLabels: z
      .record(z.string(), labelValueSchema)
      .optional()
      .refine(
        (labels) => Object.keys(labels ?? {}).every(isLabelKey),
        `every key ${LABEL_KEY_MESSAGE}`,
      )
      .refine(
        (labels) => Object.keys(labels ?? {}).length <= MAX_MATCH_LABELS,
        `at most ${MAX_MATCH_LABELS} labels`,
      )
      .meta({
        description: 'Labels that must all be present with these values.',
        maxProperties: MAX_MATCH_LABELS,
        'x-kubernetes-validations': [
          {
            rule: 'self.all(key, !format.qualifiedName().validate(key).hasValue())',
            message: `every key ${LABEL_KEY_MESSAGE}`,
          },
        ],
      }),
    matchExpressions: z
      .array(labelSelectorRequirementSchema)
      .max(16)
      .optional()
      .meta({ description: 'Label requirements, all of which must hold.' }),
  })
  .strict();

export type LabelSelector = z.output<typeof labelSelectorSchema>;

/** status.observedGeneration of every kind. */
export const statusGenerationSchema = z
  .number()
  .int()
  .optional()
  .meta({ description: 'The metadata.generation this status describes.' });

/** metav1.Condition */
export const conditionSchema = z.object({
  type: z.string().meta({ description: 'What the condition is about, e.g. Ready.' }),
  status: z.enum(['True', 'False', 'Unknown']).meta({ description: 'True, False or Unknown.' }),
  observedGeneration: z
    .number()
    .int()
    .optional()
    .meta({ description: 'The metadata.generation of the spec this condition is about.' }),
  lastTransitionTime: z.string().meta({ description: 'When status last changed (RFC 3339, UTC).' }),
  reason: z.string().meta({ description: 'Why, in one CamelCase word a program can match.' }),
  message: z.string().meta({ description: 'Why, in words for people.' }),
});

export type Condition = z.output<typeof conditionSchema>;
