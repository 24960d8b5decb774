import { readFile } from 'node:fs/promises';
import { SIGNING_KEY, verifyCertificate, type SignedCertificate } from '../erasure/certificate.ts';
import { toOperatorError } from '../errors.ts';
import type { OperatorVault } from '../vault/identity.ts';
import { Transit } from '../vault/transit.ts';
import { UsageError } from './options.ts';

// `tenant-operator certificate verify FILE`: checks an erasure certificate
// (the copy in a BackupStore, or status.erasure.certificate saved as JSON)
// against the public key of Vault's signing key. Exit 0 and a summary when
// it holds; exit 1 and the reason when it does not.

export const CERTIFICATE_USAGE = `certificate commands:
  certificate verify FILE
                 check an erasure certificate ({"document": ..., "signature": ...}) against
                 the public key of Transit key ${SIGNING_KEY} (VAULT_ADDR and a Vault identity)`;

export interface CertificateCommandEnv {
  vaultFromEnv(): Promise<OperatorVault | undefined>;
}

export async function runCertificateCommand(
  args: string[],
  env: CertificateCommandEnv,
): Promise<void> {
  const [sub, file, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(`${CERTIFICATE_USAGE}\n`);
    return;
  }
  if (sub !== 'verify') throw new UsageError(`unknown certificate command ${sub}`);
  if (file === undefined || rest.length > 0)
    throw new UsageError('certificate verify: exactly one FILE is required');
  let certificate: SignedCertificate;
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<SignedCertificate>;
    if (typeof parsed.document !== 'string' || typeof parsed.signature !== 'string')
      throw new Error('expected "document" and "signature" strings');
    certificate = { document: parsed.document, signature: parsed.signature };
  } catch (err: unknown) {
    throw new UsageError(`certificate verify: ${file}: ${(err as Error).message}`);
  }
  const vault = await env.vaultFromEnv();
  if (!vault) throw new UsageError('certificate verify needs Vault: set VAULT_ADDR');
  try {
    const transit = new Transit(vault.client, process.env.VAULT_TRANSIT_MOUNT ?? 'transit');
    const document = verifyCertificate(certificate, await transit.publicKeys(SIGNING_KEY));
    process.stdout.write(
      `valid: tenant ${String(document.tenant)} (uid ${String(document.uid)}) erased at ${String(document.completedAt)}, signed ${certificate.signature.split(':').slice(0, 2).join(':')}\n`,
    );
  } catch (err: unknown) {
    process.stderr.write(`invalid: ${toOperatorError(err).message}\n`);
    process.exitCode = 1;
  } finally {
    await vault.close();
  }
}
