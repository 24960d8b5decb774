import { randomBytes } from 'node:crypto';

// 256 bits from the OS CSPRNG. base64url has no quote, backslash, `$` or `@`,
// so the password survives connection strings, shells and SQL literals.
export function generatePassword(): string {
  return randomBytes(32).toString('base64url');
}
