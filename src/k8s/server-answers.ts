import { objectKey, type KubeObject } from './types.ts';
import { digestOf } from './compact-object.ts';
import { ownedFieldsDigest } from './owned-fields.ts';

// A safety net against a write loop. The desired objects are built to match
// what the API server stores (defaults filled in, quantities compared by
// value), but a server version may add a default we do not know of: then the
// live object never equals the desired one and every resync would rewrite it.
// So, per child, we remember what the server answered to our last write of a
// given desired state, and accept exactly that live form as in sync. Anything
// else (someone's edit) still differs from both and is repaired. Memory only:
// after a restart the first reconcile writes once more and learns again.
// Only answers that differ from what was written are kept: with ten thousand
// tenants, remembering every write would hold eighty thousand entries to
// say "the server kept what we sent".

interface Answer {
  desired: string;
  answered: string;
  warned: boolean;
}

export class ServerAnswers {
  private readonly answers = new Map<string, Answer>();

  private static key(object: KubeObject): string {
    return `${object.kind}/${objectKey(object)}`;
  }

  /** Records the server's answer to a write of `desired`. */
  remember(desired: KubeObject, answer: KubeObject): void {
    const key = ServerAnswers.key(desired);
    const written = ownedFieldsDigest(desired);
    const answered = digestOf(answer);
    if (answered === written) this.answers.delete(key);
    else this.answers.set(key, { desired: written, answered, warned: false });
  }

  /**
   * Whether `live` is exactly what the server made of our last write of this
   * same desired state. `onFirstUse` runs once per remembered answer, so the
   * unknown default is told about without flooding the log.
   */
  accepts(desired: KubeObject, live: KubeObject, onFirstUse: () => void): boolean {
    const answer = this.answers.get(ServerAnswers.key(desired));
    if (!answer) return false;
    if (answer.desired !== ownedFieldsDigest(desired)) return false;
    if (answer.answered !== digestOf(live)) return false;
    if (!answer.warned) {
      answer.warned = true;
      onFirstUse();
    }
    return true;
  }

  forget(desired: KubeObject): void {
    this.answers.delete(ServerAnswers.key(desired));
  }
}
