// Which Services (and EndpointSlices) kube-proxy proxies, written once. The sources apply the
// API's selectors (cmd/kube-proxy/app/server.go), so that --manifests sees what an informer
// would list; the tracker applies the rest (ExternalName, no ClusterIP) as upstream's
// ServiceChangeTracker does.

/** A Service (and its slices) handled by another proxy. */
export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
/** Set by the EndpointSlice controller on slices of headless Services (and by users on Services). */
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';
/** The Service an EndpointSlice belongs to. */
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';

/** The label selector of both the Service and the EndpointSlice informers. */
export const SERVICE_LABEL_SELECTOR = `!${LABEL_SERVICE_PROXY_NAME},!${LABEL_HEADLESS}`;
/** The field selector of the Service informer. */
export const SERVICE_FIELD_SELECTOR = 'spec.clusterIP!=None';

function isRecord(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** SERVICE_LABEL_SELECTOR over an object's metadata.labels (missing labels match). */
export function matchesLabelSelector(obj: unknown): boolean {
  const labels = isRecord(obj) && isRecord(obj.metadata) ? obj.metadata.labels : undefined;
  if (!isRecord(labels)) return true;
  return !(LABEL_SERVICE_PROXY_NAME in labels) && !(LABEL_HEADLESS in labels);
}

/** SERVICE_FIELD_SELECTOR over a Service. */
export function matchesFieldSelector(svc: unknown): boolean {
  const spec = isRecord(svc) && isRecord(svc.spec) ? svc.spec : {};
  return spec.clusterIP !== 'None';
}

/** What the Service informer lists: both selectors. */
export function selectedService(svc: unknown): boolean {
  return matchesLabelSelector(svc) && matchesFieldSelector(svc);
}

/** Valid Services that are never proxied: deselected, ExternalName, or without a ClusterIP. */
export function shouldSkipService(svc: unknown): boolean {
  if (!selectedService(svc)) return true;
  const spec = isRecord(svc) && isRecord(svc.spec) ? svc.spec : {};
  if (spec.type === 'ExternalName') return true;
  return spec.clusterIP === undefined || spec.clusterIP === null || spec.clusterIP === '';
}
