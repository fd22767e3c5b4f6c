// IANA IKEv2 registry values (RFC 7296 §3 and the IANA "IKEv2 Parameters" registry).
// Spec constants only; tuning constants live next to the code that uses them.

export const IKE_VERSION = 0x20; // major 2, minor 0

export const ExchangeType = {
  IKE_SA_INIT: 34,
  IKE_AUTH: 35,
  CREATE_CHILD_SA: 36,
  INFORMATIONAL: 37,
} as const;
export type ExchangeType = (typeof ExchangeType)[keyof typeof ExchangeType];

export const HeaderFlag = {
  INITIATOR: 0x08,
  VERSION: 0x10,
  RESPONSE: 0x20,
} as const;

export const PayloadType = {
  NONE: 0,
  SA: 33,
  KE: 34,
  IDi: 35,
  IDr: 36,
  CERT: 37,
  CERTREQ: 38,
  AUTH: 39,
  NONCE: 40,
  NOTIFY: 41,
  DELETE: 42,
  VENDOR_ID: 43,
  TSi: 44,
  TSr: 45,
  SK: 46,
  CP: 47,
  EAP: 48,
  SKF: 53,
} as const;
export type PayloadType = (typeof PayloadType)[keyof typeof PayloadType];

export const ProtocolId = { IKE: 1, AH: 2, ESP: 3 } as const;

export const TransformType = {
  ENCR: 1,
  PRF: 2,
  INTEG: 3,
  DH: 4, // "Key Exchange Method" since RFC 9370
  ESN: 5,
} as const;

export const Encr = {
  DES_IV64: 1,
  DES: 2,
  '3DES': 3,
  NULL: 11,
  AES_CBC: 12,
  AES_CTR: 13,
  AES_CCM_8: 14,
  AES_CCM_12: 15,
  AES_CCM_16: 16,
  AES_GCM_8: 18,
  AES_GCM_12: 19,
  AES_GCM_16: 20,
  NULL_AUTH_AES_GMAC: 21,
  CAMELLIA_CBC: 23,
  CAMELLIA_CTR: 24,
  CHACHA20_POLY1305: 28,
} as const;

export const Prf = {
  HMAC_MD5: 1,
  HMAC_SHA1: 2,
  AES128_XCBC: 4,
  HMAC_SHA2_256: 5,
  HMAC_SHA2_384: 6,
  HMAC_SHA2_512: 7,
  AES128_CMAC: 8,
} as const;

export const Integ = {
  NONE: 0,
  HMAC_MD5_96: 1,
  HMAC_SHA1_96: 2,
  AES_XCBC_96: 5,
  AES_CMAC_96: 8,
  HMAC_SHA2_256_128: 12,
  HMAC_SHA2_384_192: 13,
  HMAC_SHA2_512_256: 14,
} as const;

export const DhGroup = {
  NONE: 0,
  MODP_768: 1,
  MODP_1024: 2,
  MODP_1536: 5,
  MODP_2048: 14,
  MODP_3072: 15,
  MODP_4096: 16,
  MODP_6144: 17,
  MODP_8192: 18,
  ECP_256: 19,
  ECP_384: 20,
  ECP_521: 21,
  ECP_224: 26,
  BRAINPOOL_224: 27,
  BRAINPOOL_256: 28,
  BRAINPOOL_384: 29,
  BRAINPOOL_512: 30,
  CURVE25519: 31,
  CURVE448: 32,
} as const;

export const Esn = { NO: 0, YES: 1 } as const;

/** Transform attribute types (RFC 7296 §3.3.5). */
export const TransformAttr = { KEY_LENGTH: 14 } as const;

export const IdType = {
  IPV4_ADDR: 1,
  FQDN: 2,
  RFC822_ADDR: 3,
  IPV6_ADDR: 5,
  DER_ASN1_DN: 9,
  DER_ASN1_GN: 10,
  KEY_ID: 11,
} as const;

export const AuthMethod = {
  RSA_SIG: 1,
  SHARED_KEY_MIC: 2,
  DSS_SIG: 3,
  ECDSA_256: 9,
  ECDSA_384: 10,
  ECDSA_521: 11,
  GENERIC_DIGITAL_SIGNATURE: 14,
} as const;

export const TsType = { IPV4_ADDR_RANGE: 7, IPV6_ADDR_RANGE: 8 } as const;

export const CfgType = { CFG_REQUEST: 1, CFG_REPLY: 2, CFG_SET: 3, CFG_ACK: 4 } as const;

/** Notify message types (RFC 7296 §3.10.1 plus later RFCs). Errors < 16384, status >= 16384. */
export const Notify = {
  UNSUPPORTED_CRITICAL_PAYLOAD: 1,
  INVALID_IKE_SPI: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_SYNTAX: 7,
  INVALID_MESSAGE_ID: 9,
  INVALID_SPI: 11,
  NO_PROPOSAL_CHOSEN: 14,
  INVALID_KE_PAYLOAD: 17,
  AUTHENTICATION_FAILED: 24,
  SINGLE_PAIR_REQUIRED: 34,
  NO_ADDITIONAL_SAS: 35,
  INTERNAL_ADDRESS_FAILURE: 36,
  FAILED_CP_REQUIRED: 37,
  TS_UNACCEPTABLE: 38,
  INVALID_SELECTORS: 39,
  TEMPORARY_FAILURE: 43,
  CHILD_SA_NOT_FOUND: 44,
  INITIAL_CONTACT: 16384,
  SET_WINDOW_SIZE: 16385,
  ADDITIONAL_TS_POSSIBLE: 16386,
  IPCOMP_SUPPORTED: 16387,
  NAT_DETECTION_SOURCE_IP: 16388,
  NAT_DETECTION_DESTINATION_IP: 16389,
  COOKIE: 16390,
  USE_TRANSPORT_MODE: 16391,
  HTTP_CERT_LOOKUP_SUPPORTED: 16392,
  REKEY_SA: 16393,
  ESP_TFC_PADDING_NOT_SUPPORTED: 16394,
  NON_FIRST_FRAGMENTS_ALSO: 16395,
  MOBIKE_SUPPORTED: 16396,
  ADDITIONAL_IP4_ADDRESS: 16397,
  ADDITIONAL_IP6_ADDRESS: 16398,
  NO_ADDITIONAL_ADDRESSES: 16399,
  UPDATE_SA_ADDRESSES: 16400,
  COOKIE2: 16401,
  NO_NATS_ALLOWED: 16402,
  AUTH_LIFETIME: 16403,
  MULTIPLE_AUTH_SUPPORTED: 16404,
  ANOTHER_AUTH_FOLLOWS: 16405,
  REDIRECT_SUPPORTED: 16406,
  REDIRECT: 16407,
  REDIRECTED_FROM: 16408,
  TICKET_LT_OPAQUE: 16409,
  TICKET_REQUEST: 16410,
  TICKET_ACK: 16411,
  TICKET_NACK: 16412,
  TICKET_OPAQUE: 16413,
  LINK_ID: 16414,
  USE_WESP_MODE: 16415,
  ROHC_SUPPORTED: 16416,
  EAP_ONLY_AUTHENTICATION: 16417,
  CHILDLESS_IKEV2_SUPPORTED: 16418,
  QUICK_CRASH_DETECTION: 16419,
  IKEV2_MESSAGE_ID_SYNC_SUPPORTED: 16420,
  IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED: 16421,
  IKEV2_MESSAGE_ID_SYNC: 16422,
  IPSEC_REPLAY_COUNTER_SYNC: 16423,
  SECURE_PASSWORD_METHODS: 16424,
  PSK_PERSIST: 16425,
  PSK_CONFIRM: 16426,
  ERX_SUPPORTED: 16427,
  IFOM_CAPABILITY: 16428,
  SENDER_REQUEST_ID: 16429,
  IKEV2_FRAGMENTATION_SUPPORTED: 16430,
  SIGNATURE_HASH_ALGORITHMS: 16431,
  CLONE_IKE_SA_SUPPORTED: 16432,
  CLONE_IKE_SA: 16433,
  PUZZLE: 16434,
  USE_PPK: 16435,
  PPK_IDENTITY: 16436,
  NO_PPK_AUTH: 16437,
  INTERMEDIATE_EXCHANGE_SUPPORTED: 16438,
} as const;

const byValue = (o: Record<string, number>): Map<number, string> =>
  new Map(Object.entries(o).map(([k, v]) => [v, k]));
const notifyNames = byValue(Notify);
const exchangeNames = byValue(ExchangeType);
const payloadShort: Record<number, string> = {
  33: 'SA',
  34: 'KE',
  35: 'IDi',
  36: 'IDr',
  37: 'CERT',
  38: 'CERTREQ',
  39: 'AUTH',
  40: 'No',
  41: 'N',
  42: 'D',
  43: 'V',
  44: 'TSi',
  45: 'TSr',
  46: 'SK',
  47: 'CP',
  48: 'EAP',
  53: 'SKF',
};

export function notifyName(t: number): string {
  return notifyNames.get(t) ?? `NOTIFY_${t}`;
}
export function exchangeName(t: number): string {
  return exchangeNames.get(t) ?? `EXCHANGE_${t}`;
}
export function payloadShortName(t: number): string {
  return payloadShort[t] ?? `U${t}`;
}
/** Error notifies are 1..16383 (RFC 7296 §3.10.1). */
export function isErrorNotify(t: number): boolean {
  return t > 0 && t < 16384;
}
