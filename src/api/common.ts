import { z } from 'zod';

// Kubernetes types that several kinds embed.

/** A resource quantity written as a string: 4, 500m, 8Gi, 1.5. */
export const quantitySchema = z
  .string()
  .max(32)
  .regex(
    /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/,
    'must be a quantity such as 4, 500m or 8Gi',
  );

export const labelSelectorSchema = z
  .object({
    matchLabels: z.record(z.string(), z.string()).optional(),
    matchExpressions: z
      .array(
        z
          .object({
            key: z.string().min(1).max(317),
            operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
            values: z.array(z.string()).optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

export type LabelSelector = z.output<typeof labelSelectorSchema>;

/** metav1.Condition */
export const conditionSchema = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().optional(),
  lastTransitionTime: z.string(),
  reason: z.string(),
  message: z.string(),
});

export type Condition = z.output<typeof conditionSchema>;
