// Error classes with a stable `code` (as js-libp2p-noise does). Protocol errors carry the
// IKEv2 Notify type that should be sent back, where the RFC names one.

export class IkegwError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Malformed input: lengths, counts or ranges that do not add up. RFC 7296 answers INVALID_SYNTAX. */
export class DecodeError extends IkegwError {
  readonly notify = 'INVALID_SYNTAX' as const;
  constructor(message: string) {
    super('ERR_DECODE', message);
  }
}

/** A protocol failure that maps to an IKEv2 error Notify (e.g. NO_PROPOSAL_CHOSEN). */
export class IkeProtocolError extends IkegwError {
  constructor(
    readonly notify: string,
    message: string,
    readonly notifyData?: Uint8Array,
  ) {
    super(`ERR_IKE_${notify}`, message);
  }
}

/** Integrity check or decryption of an SK payload failed: drop silently (RFC 7296 §2.21.2). */
export class IntegrityError extends IkegwError {
  constructor(message = 'integrity check failed') {
    super('ERR_INTEGRITY', message);
  }
}

/** Invalid configuration; `field` is the dotted path of the offending value. */
export class ConfigError extends IkegwError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('ERR_CONFIG', `${field}: ${message}`);
  }
}

/** A kernel (netlink) request failed; keeps the errno and names the operation. */
export class KernelError extends IkegwError {
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly errnoName: string,
    message?: string,
  ) {
    super('ERR_KERNEL', message ?? `${op} failed: ${errnoName} (${errno})`);
  }
}
