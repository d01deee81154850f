// Detached CMS SignedData (pkijs) over a document's exact bytes, with the signer's certificate
// chain embedded: how operators sign topologies and operations. Anyone can check one with
// `openssl cms -verify -binary -inform DER -content doc.json -CAfile root.pem -purpose any`.
import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as ConstructorParameters<typeof pkijs.CryptoEngine>[0]['crypto'] }));

/** pkijs wants an ArrayBuffer holding exactly these bytes. */
function buffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

const ID_DATA = '1.2.840.113549.1.7.1';
const ID_SIGNED_DATA = '1.2.840.113549.1.7.2';

function certOf(der: Uint8Array): pkijs.Certificate {
  return pkijs.Certificate.fromBER(buffer(der));
}

/** Signs `content` (detached); `chainDer` is the signer's certificate followed by its CA. */
export async function signDetached(content: Uint8Array, chainDer: readonly Uint8Array[], key: webcrypto.CryptoKey): Promise<Uint8Array> {
  const certs = chainDer.map(certOf);
  const signer = certs[0]!;
  const sd = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: ID_DATA }),
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: signer.issuer, serialNumber: signer.serialNumber }),
      }),
    ],
    certificates: certs,
  });
  await sd.sign(key, 0, 'SHA-256', buffer(content));
  const ci = new pkijs.ContentInfo({ contentType: ID_SIGNED_DATA, content: sd.toSchema(true) });
  return new Uint8Array(ci.toSchema().toBER(false));
}

export interface CmsParts {
  /** Embedded certificates (DER), signer first when it can be identified. */
  chain: Uint8Array[];
  /** True when the signature verifies over `content` with the signer certificate's key. */
  signatureValid: boolean;
}

/**
 * Parses a detached SignedData and checks its one signature over `content`. Trust in the
 * signer (chain, CRLs, capability) is the caller's job, with PeerVerifier. Throws on bytes
 * that are not CMS SignedData.
 */
export async function openDetached(cms: Uint8Array, content: Uint8Array): Promise<CmsParts> {
  const asn = asn1js.fromBER(buffer(cms));
  if (asn.offset === -1) throw new Error('not DER');
  const ci = new pkijs.ContentInfo({ schema: asn.result });
  if (ci.contentType !== ID_SIGNED_DATA) throw new Error('not CMS SignedData');
  const sd = new pkijs.SignedData({ schema: ci.content });
  if (sd.signerInfos.length !== 1) throw new Error(`expected one signer, found ${sd.signerInfos.length}`);
  if (sd.encapContentInfo.eContent) throw new Error('the content must be detached');
  const certs = (sd.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate);
  const sid = sd.signerInfos[0]!.sid;
  const isSigner = (c: pkijs.Certificate) =>
    sid instanceof pkijs.IssuerAndSerialNumber && c.serialNumber.isEqual(sid.serialNumber) && c.issuer.isEqual(sid.issuer);
  const ordered = [...certs.filter(isSigner), ...certs.filter((c) => !isSigner(c))];
  let signatureValid = false;
  try {
    signatureValid = (await sd.verify({ signer: 0, data: buffer(content), checkChain: false, extendedMode: false })) === true;
  } catch {
    signatureValid = false;
  }
  return { chain: ordered.map((c) => new Uint8Array(c.toSchema().toBER(false))), signatureValid };
}
