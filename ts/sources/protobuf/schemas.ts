// The fields of each API type that kproxy reads, by their protobuf numbers (k8s.io/api and
// k8s.io/apimachinery generated.proto). Anything not listed is skipped unread; a field the
// tracker starts reading must be added here, and tests/k8s/protobuf.test.ts compares every
// listed field with the API server's own JSON for the same objects.
import type { Field, MessageSchema } from './decode.js';

const str = (name: string, present = false): Field => ({ name, kind: 'string', present });
const strs = (name: string): Field => ({ name, kind: 'string', repeated: true });
const int = (name: string, present = false): Field => ({ name, kind: 'int32', present });
const bool = (name: string): Field => ({ name, kind: 'bool', present: true });
const map = (name: string): Field => ({ name, kind: 'map' });
const msg = (name: string, message: MessageSchema, present = false): Field => ({ name, kind: 'message', message, present });
const msgs = (name: string, message: MessageSchema): Field => ({ name, kind: 'message', message, repeated: true });

/** meta/v1 ObjectMeta: identity, labels and annotations (managedFields = 17 is skipped). */
export const OBJECT_META: MessageSchema = {
  1: str('name'),
  3: str('namespace'),
  6: str('resourceVersion'),
  11: map('labels'),
  12: map('annotations'),
};

export const LIST_META: MessageSchema = { 2: str('resourceVersion'), 3: str('continue') };

/** meta/v1 Status: what an error answer or a watch ERROR event carries. */
export const STATUS: MessageSchema = { 2: str('status'), 3: str('message'), 4: str('reason'), 6: int('code') };

const SERVICE_PORT: MessageSchema = { 1: str('name'), 2: str('protocol'), 3: int('port'), 5: int('nodePort') };

const SESSION_AFFINITY_CONFIG: MessageSchema = { 1: msg('clientIP', { 1: int('timeoutSeconds', true) }, true) };

const SERVICE_SPEC: MessageSchema = {
  1: msgs('ports', SERVICE_PORT),
  3: str('clusterIP'),
  4: str('type'),
  5: strs('externalIPs'),
  7: str('sessionAffinity'),
  9: strs('loadBalancerSourceRanges'),
  11: str('externalTrafficPolicy'),
  12: int('healthCheckNodePort'),
  14: msg('sessionAffinityConfig', SESSION_AFFINITY_CONFIG, true),
  18: strs('clusterIPs'),
  22: str('internalTrafficPolicy', true),
  23: str('trafficDistribution', true),
};

const LOAD_BALANCER_INGRESS: MessageSchema = { 1: str('ip'), 2: str('hostname'), 3: str('ipMode', true) };

const SERVICE_STATUS: MessageSchema = { 1: msg('loadBalancer', { 1: msgs('ingress', LOAD_BALANCER_INGRESS) }) };

export const SERVICE: MessageSchema = { 1: msg('metadata', OBJECT_META), 2: msg('spec', SERVICE_SPEC), 3: msg('status', SERVICE_STATUS) };

const ENDPOINT_CONDITIONS: MessageSchema = { 1: bool('ready'), 2: bool('serving'), 3: bool('terminating') };

const FOR_NAME: MessageSchema = { 1: str('name') };

const ENDPOINT_HINTS: MessageSchema = { 1: msgs('forZones', FOR_NAME), 2: msgs('forNodes', FOR_NAME) };

const ENDPOINT: MessageSchema = {
  1: strs('addresses'),
  2: msg('conditions', ENDPOINT_CONDITIONS),
  6: str('nodeName', true),
  7: str('zone', true),
  8: msg('hints', ENDPOINT_HINTS, true),
};

const ENDPOINT_PORT: MessageSchema = { 1: str('name', true), 2: str('protocol', true), 3: int('port', true) };

export const ENDPOINT_SLICE: MessageSchema = {
  1: msg('metadata', OBJECT_META),
  2: msgs('endpoints', ENDPOINT),
  3: msgs('ports', ENDPOINT_PORT),
  4: str('addressType'),
};
