// Upstream v1alpha1 defaults (pkg/proxy/apis/config/v1alpha1/defaults.go), in the shape of the
// YAML object. kproxy starts from these so /configz shows a familiar, fully defaulted object.

export const API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
export const KIND = 'KubeProxyConfiguration';

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';
/** clientConnection.contentType's accepted values (the API's two encodings). */
export const CONTENT_TYPES: readonly string[] = [PROTOBUF_CONTENT_TYPE, 'application/json'];
export const DEFAULT_HEALTHZ_PORT = 10256;
export const DEFAULT_METRICS_PORT = 10249;
export const DEFAULT_SYNC_PERIOD_MS = 30_000;
export const DEFAULT_MIN_SYNC_PERIOD_MS = 1_000;
export const DEFAULT_CONFIG_SYNC_PERIOD_MS = 15 * 60_000;
export const DEFAULT_MASQUERADE_BIT = 14;

export type RawConfig = Record<string, any>;

export function defaultRawConfig(): RawConfig {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    featureGates: {},
    clientConnection: {
      kubeconfig: '',
      acceptContentTypes: '',
      contentType: PROTOBUF_CONTENT_TYPE,
      qps: 5,
      burst: 10,
    },
    // JSON is kproxy's default format (upstream's is text); the rest mirrors component-base's.
    logging: { format: 'json', flushFrequency: '5s', verbosity: 0, options: { text: { infoBufferSize: '0' }, json: { infoBufferSize: '0' } } },
    hostnameOverride: '',
    bindAddress: '0.0.0.0',
    healthzBindAddress: `0.0.0.0:${DEFAULT_HEALTHZ_PORT}`,
    metricsBindAddress: `127.0.0.1:${DEFAULT_METRICS_PORT}`,
    bindAddressHardFail: false,
    enableProfiling: false,
    showHiddenMetricsForVersion: '',
    mode: 'nftables',
    iptables: { masqueradeBit: 14, masqueradeAll: false, localhostNodePorts: true, syncPeriod: '30s', minSyncPeriod: '1s' },
    ipvs: {
      syncPeriod: '30s', minSyncPeriod: '0s', scheduler: '', excludeCIDRs: null, strictARP: false,
      tcpTimeout: '0s', tcpFinTimeout: '0s', udpTimeout: '0s',
    },
    nftables: { masqueradeBit: 14, masqueradeAll: false, syncPeriod: '30s', minSyncPeriod: '1s' },
    winkernel: { networkName: '', sourceVip: '', enableDSR: false, rootHnsEndpointName: '', forwardHealthCheckVip: false },
    detectLocalMode: 'ClusterCIDR',
    detectLocal: { bridgeInterface: '', interfaceNamePrefix: '' },
    clusterCIDR: '',
    nodePortAddresses: null,
    oomScoreAdj: -999,
    conntrack: {
      maxPerCore: 32768, min: 131072, tcpEstablishedTimeout: '24h0m0s', tcpCloseWaitTimeout: '1h0m0s',
      tcpBeLiberal: false, udpTimeout: '0s', udpStreamTimeout: '0s',
    },
    configSyncPeriod: '15m0s',
    portRange: '',
  };
}
