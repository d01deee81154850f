// PkiError: every failure of the PKI library and the themis-pki CLI, with a stable code and
// the field (flag, file or ASN.1 element) it is about, so messages fit on one line.

export const PKI_ERROR_CODES = [
  'INVALID_ARGUMENT', // a flag or parameter is malformed or out of range
  'MALFORMED_PEM', // a file is not the PEM (or DER) it should be
  'MALFORMED_EXTENSION', // the identity extension does not decode
  'BAD_PASSPHRASE', // an encrypted key did not open with the passphrase given
  'PASSPHRASE_REQUIRED', // no passphrase source and no terminal to ask on
  'FILE_EXISTS', // an output file exists and --force was not given
  'NOT_FOUND', // a file, CA or serial the command needs does not exist
  'CONFLICT', // e.g. revoking a serial twice
] as const;

export type PkiErrorCode = (typeof PKI_ERROR_CODES)[number];

export class PkiError extends Error {
  override name = 'PkiError';
  constructor(
    readonly code: PkiErrorCode,
    /** What the error is about: a flag (`--token-range`), a file path or an ASN.1 field. */
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

export function invalid(field: string, problem: string): PkiError {
  return new PkiError('INVALID_ARGUMENT', field, problem);
}
