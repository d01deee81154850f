// Why a backup or a restore is refused: one stable code per reason (docs/disaster-recovery.md
// lists them), printed by the CLI as `refused (CODE): message`.
export const BACKUP_REFUSALS = {
  BACKUP_MALFORMED: 'the backup directory, its manifest or a data line is not in the expected form',
  BACKUP_SIGNATURE_INVALID: 'manifest.cms is not a valid signature over manifest.json',
  BACKUP_SIGNER_UNTRUSTED: 'the signer is not a trusted operator with the admin capability (chain, CRLs, role)',
  BACKUP_WRONG_CLUSTER: 'the backup was taken in another cluster',
  BACKUP_WRONG_SHARD: 'the backup is of another shard than the one named',
  BACKUP_FILE_DIGEST: 'a file differs from the size or SHA-256 the manifest records, or is missing',
  BACKUP_DATA_DIGEST: 'the data differs from the XXH64 digest or key count the manifest records',
  BACKUP_SOURCE_FAILED: 'the storage node did not deliver a complete snapshot',
  RESTORE_UNTIL_UNREACHABLE: 'the signed segments of the archived change feed do not reach the point asked for',
  RESTORE_UNTIL_MALFORMED: '--until is neither a sequence number nor an RFC 3339 date-time with an offset',
  RESTORE_UNTIL_FUTURE: '--until names a time later than now',
  RESTORE_UNTIL_BEFORE_BACKUP: '--until names a time before the newest change the backup holds',
  RESTORE_TIME_UNKNOWN: 'an archived change before the point asked for carries no commit time',
  RESTORE_TARGET_IN_USE: 'a storage node holds the target data directory open',
  RESTORE_TARGET_NOT_EMPTY: 'the target data directory holds data and --replace was not given',
} as const;

export type RefusalCode = keyof typeof BACKUP_REFUSALS;

export class BackupRefused extends Error {
  override name = 'BackupRefused';
  constructor(
    readonly code: RefusalCode,
    detail: string,
  ) {
    super(`refused (${code}): ${detail}`);
  }
}
