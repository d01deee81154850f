// A worker's CRLs from etcd, as its control process accepted them (issuer signature, a higher
// CRL number: proxy/control/etcd-crl-source.ts) and passed them on over IPC. The worker's Trust
// enforces them beside the CRL files, exactly as the control process does.
import { parseCrl, type ParsedCrl } from '../../src/pki/crl.js';
import type { CrlFeed } from '../trust.js';

export class MirroredCrls implements CrlFeed {
  private list: ParsedCrl[] = [];
  private der: string[] = [];

  constructor(first: readonly string[]) {
    this.set(first);
  }

  /** The control process's set (DER, base64); false when it is the one already held. */
  set(crls: readonly string[]): boolean {
    if (crls.length === this.der.length && crls.every((c, i) => c === this.der[i])) return false;
    this.list = crls.map((c, i) => parseCrl(Buffer.from(c, 'base64'), `CRL ${i + 1} from the control process`));
    this.der = [...crls];
    return true;
  }

  crls(): ParsedCrl[] {
    return this.list;
  }

  /** The control process judges CRLs against the roots; a worker takes what it accepted. */
  retrust(_rootPem: string): void {}

  close(): void {}
}
