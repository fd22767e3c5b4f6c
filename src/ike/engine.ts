// IkeEngine: the sans-IO IKEv2 core. Events in, effects out (STYLE.md Rule 0).
// (Work in progress: the full implementation lands with the IKEv2 engine issue.)
import type { Random } from '../common/random.js';
import type { EngineConfig } from './config.js';
import type { Effect, IkeEvent } from './events.js';

export interface EngineDeps {
  random: Random;
}

/** Read-only view of one IKE_SA for `ikegw sas` and metrics (no secrets). */
export interface IkeSaInfo {
  uid: number;
  conn: string;
  state: string;
  initiator: boolean;
  spiI: string;
  spiR: string;
  local: { address: string; port: number };
  remote: { address: string; port: number };
  localId: string;
  remoteId: string;
  algorithms: string;
  natLocal: boolean;
  natRemote: boolean;
  establishedAtMs?: number;
  rekeyAtMs?: number;
  children: ChildSaInfo[];
}

export interface ChildSaInfo {
  uid: number;
  name: string;
  state: string;
  spiIn: number;
  spiOut: number;
  reqid: number;
  algorithms: string;
  encap: boolean;
  localTs: string[];
  remoteTs: string[];
  installedAtMs?: number;
  rekeyAtMs?: number;
}

export class IkeEngine {
  constructor(
    readonly config: EngineConfig,
    readonly deps: EngineDeps,
  ) {}

  handle(_ev: IkeEvent, _nowMs: number): Effect[] {
    return [];
  }

  list(): IkeSaInfo[] {
    return [];
  }
}
