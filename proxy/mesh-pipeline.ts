// The mesh port's request path, as ordered lists of stages (proxy/stages/, one file each).
// The order is the protocol's (docs/mesh-protocol.md): cheapest checks first; replay after
// the signature and the body hash, so forged requests never fill the nonce cache; ownership
// last, since only a verified request may learn this shard's epoch.
import { body } from './stages/body.js';
import { capability } from './stages/capability.js';
import { identity } from './stages/identity.js';
import type { Stage } from './stages/mesh-request.js';
import { ownership } from './stages/ownership.js';
import { replay } from './stages/replay.js';
import { signature } from './stages/signature.js';
import { signedHeaders } from './stages/signed-headers.js';
import { timestamp } from './stages/timestamp.js';
import { verified } from './stages/verified.js';

/** Shard peers (cluster CA, primary/replica): every request signed, then served locally. */
export const SHARD_PEER_STAGES: readonly Stage[] = [
  signedHeaders, // 400 malformed or missing x-themis-* headers
  identity, // 401 signed sender is not the TLS peer
  capability, // 403
  timestamp, // 401 outside the replay window
  signature, // 401
  body, // 413 / 400, then 401 when it does not match the signed hash
  replay, // 409 nonce seen before or timestamp at the sender's floor (remembered only from here on); waits for the persisted mark when it must (503)
  verified, // SIGNATURE_VERIFIED, also for requests the next stage refuses
  ownership, // 421 this shard does not own the key at its epoch
];

/** Client-certificate apps (and operators, who hold no data-path capability): capability, then routed across the cluster like the app port. */
export const APP_PEER_STAGES: readonly Stage[] = [capability];
