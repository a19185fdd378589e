import type { Logger } from '@pgharbor/core';

export type ConditionalPutMode = 'auto' | 'on' | 'off';

/**
 * Whether create-only puts can rely on the store: `If-None-Match: *` on
 * PutObject / CompleteMultipartUpload makes S3 refuse (412) to replace an
 * existing object, atomically — exactly one of several racing writers wins.
 * AWS S3 has honoured it since August 2024, and recent MinIO and Ceph do;
 * older or simpler stores (s3rver among them) silently ignore the header
 * and overwrite.
 *
 * "auto" asks the store once per driver (a probe object written twice, the
 * second time with the header) unless the endpoint is AWS itself; when the
 * store ignores the header, pgharbor falls back to HEAD-then-PUT and says
 * so once. "on" trusts the store without asking, "off" always falls back.
 */
export class ConditionalPutSupport {
  private decision?: Promise<boolean>;

  constructor(
    private readonly mode: ConditionalPutMode,
    private readonly isAws: boolean,
    private readonly probe: () => Promise<boolean>,
    private readonly logger: Logger,
    private readonly location: string,
  ) {}

  /** True when create-only puts are atomic on this store. */
  supported(): Promise<boolean> {
    this.decision ??= this.decide();
    // A failed probe (store down) is not a decision: ask again next time.
    this.decision.catch(() => (this.decision = undefined));
    return this.decision;
  }

  private async decide(): Promise<boolean> {
    if (this.mode === 'on' || (this.mode === 'auto' && this.isAws)) return true;
    const supported = this.mode === 'auto' ? await this.probe() : false;
    if (!supported) {
      this.logger.warn(
        `s3 repository ${this.location}: the store ${this.mode === 'off' ? 'is configured (conditional_put: off) as not honouring' : 'ignores'} ` +
          'If-None-Match, so create-only writes (WAL files, locks) are best effort (HEAD, then PUT): ' +
          'two writers racing for the same key can both succeed, the last one stored wins',
      );
    }
    return supported;
  }
}
