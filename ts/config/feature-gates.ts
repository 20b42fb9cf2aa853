// kube-proxy's --feature-gates / featureGates: the gate names upstream's kube-proxy knows, with
// their defaults, so a command line or config file written for kube-proxy is accepted as it is.
// kube-proxy registers every Kubernetes gate (pkg/features, the apiserver's and client-go's),
// plus component-base's logging and metrics gates. The table is taken from upstream's generated
// test/compatibility_lifecycle/reference/feature_list.md (the 1.36 development snapshot), plus
// the gates added for 1.37 that matter to a proxy (KubeProxyIPVS). Most have no meaning for kproxy:
// they are accepted, validated as upstream (unknown names and values against a lock fail) and
// reported in /configz; GATE_EFFECTS lists the ones kproxy acts on.

import { ConfigError } from './errors.js';

/** Enabled by default. */
const ON: readonly string[] = [
  'APIResponseCompression', 'APIServerIdentity', 'AllowDNSOnlyNodeCSR',
  'AllowInsecureKubeletCertificateSigningRequests', 'AllowParsingUserUIDFromCertAuth', 'AtomicFIFO',
  'AuthorizePodWebsocketUpgradeCreatePermission', 'CPUManagerPolicyBetaOptions',
  'ChangeContainerStatusOnKubeletRestart', 'ClearingNominatedNodeNameAfterBinding', 'ContainerCheckpoint',
  'ContainerRestartRules', 'DRAAdminAccess', 'DRAPrioritizedList', 'DRAResourceClaimDeviceStatus',
  'DRASchedulerFilterTimeout', 'DeclarativeValidation', 'DeploymentReplicaSetTerminatingReplicas',
  'DetectCacheInconsistency', 'DisableCPUQuotaWithExclusiveCPUs', 'DisableNodeKubeProxyVersion', 'EnvFiles',
  'ExternalServiceAccountTokenSigner', 'GitRepoVolumeDriver', 'GracefulNodeShutdown',
  'GracefulNodeShutdownBasedOnPodPriority', 'HPAConfigurableTolerance', 'HostnameOverride', 'ImageVolume',
  'InOrderInformers', 'InOrderInformersBatchProcess', 'InformerResourceVersion', 'KMSv1',
  'KubeletCrashLoopBackOffMax', 'KubeletEnsureSecretPulledImages', 'KubeletPSI',
  'KubeletPodResourcesDynamicResources', 'KubeletPodResourcesGet', 'KubeletPodResourcesListUseActivePods',
  'KubeletRegistrationGetOnExistsOnly', 'KubeletSeparateDiskGC',
  'KubeletServiceAccountTokenForCredentialProviders', 'ListFromCacheSnapshot',
  'MatchLabelKeysInPodTopologySpread', 'MatchLabelKeysInPodTopologySpreadSelectorMerge',
  'MaxUnavailableStatefulSet', 'MutableCSINodeAllocatableCount', 'NominatedNodeNameForExpectation',
  'OpenAPIEnums', 'OpportunisticBatching', 'PodDeletionCost', 'PodLevelResources',
  'PodReadyToStartContainersCondition', 'PodTopologyLabelsAdmission', 'PortForwardWebsockets',
  'PreventStaticPodAPIReferences', 'ProcMountType', 'RelaxedServiceNameValidation',
  'ReloadKubeletServerCertificateFile', 'RemoteRequestHeaderUID', 'ResourceHealthStatus',
  'ResourceHealthStatusMessage', 'RotateKubeletServerCertificate', 'SELinuxChangePolicy',
  'SELinuxMountReadWriteOncePod', 'SchedulerAsyncPreemption', 'SchedulerPopFromBackoffQ',
  'SeparateCacheWatchRPC', 'ServiceAccountNodeAudienceRestriction', 'SizeBasedListCostEstimate',
  'StatefulSetSemanticRevisionComparison', 'StorageNamespaceIndex', 'StorageVersionHash',
  'StructuredAuthenticationConfigurationEgressSelector', 'StructuredAuthenticationConfigurationJWKSMetrics',
  'TokenRequestServiceAccountUIDValidation', 'TopologyManagerPolicyBetaOptions',
  'TranslateStreamCloseWebsocketRequests', 'UnauthenticatedHTTP2DOSMitigation', 'UnlockWhileProcessingFIFO',
  'UserNamespacesSupport', 'WatchCacheInitializationPostStartHook', 'WatchList', 'WatchListClient',
  'WindowsGracefulNodeShutdown',
  // component-base logging and metrics (logsapi.AddFeatureGates, metricsfeatures.AddFeatureGates)
  'ContextualLogging', 'LoggingBetaOptions', 'ComponentSLIs',
  // 1.37: IPVS mode's deprecation gate (KEP-5495); on until 1.40
  'KubeProxyIPVS',
];

/** Disabled by default. */
const OFF: readonly string[] = [
  'APIServingWithRoutine', 'AllowUnsafeMalformedObjectDeletion', 'CBORServingAndStorage',
  'CPUManagerPolicyAlphaOptions', 'CRDObservedGenerationTracking', 'CSIVolumeHealth', 'ClientsAllowCBOR',
  'ClientsPreferCBOR', 'CloudControllerManagerWatchBasedRoutesReconciliation',
  'CloudControllerManagerWebhook', 'ClusterTrustBundle', 'ClusterTrustBundleProjection', 'ComponentFlagz',
  'ComponentStatusz', 'ConcurrentWatchObjectDecode', 'ConstrainedImpersonation', 'ContainerStopSignals',
  'CoordinatedLeaderElection', 'CrossNamespaceVolumeDataSource', 'CustomCPUCFSQuotaPeriod',
  'DRAConsumableCapacity', 'DRADeviceBindingConditions', 'DRADeviceTaintRules', 'DRADeviceTaints',
  'DRAExtendedResource', 'DRAPartitionableDevices', 'DeclarativeValidationTakeover', 'EventedPLEG',
  'GangScheduling', 'GenericWorkload', 'HPAScaleToZero', 'ImageVolumeWithDigest',
  'InPlacePodLevelResourcesVerticalScaling', 'InPlacePodVerticalScalingAllocatedStatus',
  'InPlacePodVerticalScalingExclusiveCPUs', 'InPlacePodVerticalScalingExclusiveMemory',
  'KubeletInUserNamespace', 'LocalStorageCapacityIsolationFSQuotaMonitoring', 'MemoryQoS',
  'MutablePVNodeAffinity', 'MutablePodResourcesForSuspendedJobs',
  'MutableSchedulingDirectivesForSuspendedJobs', 'MutatingAdmissionPolicy', 'NodeDeclaredFeatures',
  'NodeLogQuery', 'PodAndContainerStatsFromCRI', 'PodCertificateRequest', 'PodLogsQuerySplitStreams',
  'QOSReserved', 'ReduceDefaultCrashLoopBackOffDecay', 'RestartAllContainersOnContainerExits',
  'RuntimeClassInImageCriApi', 'SELinuxMount', 'SchedulerAsyncAPICalls', 'StorageCapacityScoring',
  'StorageVersionAPI', 'StorageVersionMigrator', 'StrictIPCIDRValidation',
  'TaintTolerationComparisonOperators', 'TopologyManagerPolicyAlphaOptions',
  'UnknownVersionInteroperabilityProxy', 'UserNamespacesHostNetworkSupport', 'VolumeLimitScaling',
  'WindowsCPUAndMemoryAffinity', 'WindowsHostNetwork',
  'LoggingAlphaOptions',
  // upstream's two pseudo-gates: every alpha / beta gate at once
  'AllAlpha', 'AllBeta',
];

/** GA (or deprecated) and locked to true: setting false fails, as upstream. */
const LOCKED_ON: readonly string[] = [
  'APIServerTracing', 'AggregatedDiscoveryRemoveBetaType', 'AllowOverwriteTerminationGracePeriodSeconds',
  'AnonymousAuthConfigurableEndpoints', 'AnyVolumeDataSource', 'AuthorizeNodeWithSelectors',
  'AuthorizeWithSelectors', 'BtreeWatchCache', 'CPUManagerPolicyOptions', 'CRDValidationRatcheting',
  'CSIServiceAccountTokenSecrets', 'ConsistentListFromCache', 'CustomResourceFieldSelectors',
  'DisableAllocatorDualWrite', 'DynamicResourceAllocation', 'ExecProbeTimeout', 'HonorPVReclaimPolicy',
  'ImageMaximumGCAge', 'InPlacePodVerticalScaling', 'JobBackoffLimitPerIndex', 'JobManagedBy',
  'JobPodReplacementPolicy', 'JobSuccessPolicy', 'KubeletCgroupDriverFromCRI', 'KubeletFineGrainedAuthz',
  'KubeletTracing', 'LogarithmicScaleDown', 'MatchLabelKeysInPodAffinity', 'MultiCIDRServiceAllocator',
  'NFTablesProxyMode', 'NodeInclusionPolicyInPodTopologySpread', 'NodeSwap', 'OrderedNamespaceDeletion',
  'PodLifecycleSleepAction', 'PodLifecycleSleepActionAllowZero', 'PodObservedGenerationTracking',
  'PodSchedulingReadiness', 'PreferSameTrafficDistribution', 'RecoverVolumeExpansionFailure',
  'RecursiveReadOnlyMounts', 'RelaxedDNSSearchValidation', 'RelaxedEnvironmentVariableValidation',
  'ResilientWatchCacheInitialization', 'RetryGenerateName', 'SchedulerQueueingHints',
  'SeparateTaintEvictionController', 'ServiceAccountTokenJTI', 'ServiceAccountTokenNodeBinding',
  'ServiceAccountTokenNodeBindingValidation', 'ServiceAccountTokenPodNodeInfo', 'SidecarContainers',
  'StreamingCollectionEncodingToJSON', 'StreamingCollectionEncodingToProtobuf',
  'StructuredAuthenticationConfiguration', 'SupplementalGroupsPolicy', 'SystemdWatchdog',
  'TopologyManagerPolicyOptions', 'VolumeAttributesClass', 'WinDSR', 'WinOverlay',
];

export interface GateSpec { default: boolean; locked: boolean }

const spec = (names: readonly string[], g: GateSpec): Array<[string, GateSpec]> => names.map((n) => [n, g]);

export const FEATURE_GATES: ReadonlyMap<string, GateSpec> = new Map([
  ...spec(ON, { default: true, locked: false }),
  ...spec(OFF, { default: false, locked: false }),
  ...spec(LOCKED_ON, { default: true, locked: true }),
]);

/** The gates kproxy has behaviour for, and what it is. */
export const GATE_EFFECTS: Readonly<Record<string, string>> = {
  ComponentFlagz: 'false turns /flagz off (kproxy serves it unless disabled; upstream only when enabled)',
  KubeProxyIPVS: 'false refuses --proxy-mode ipvs',
};

/**
 * Checks a featureGates map as upstream's SetFromMap does; `from` names the flag or field.
 * Returns the map itself (what /configz shows: the gates as given, not every default).
 */
export function checkFeatureGates(gates: Record<string, boolean>, from: string): Record<string, boolean> {
  for (const [name, value] of Object.entries(gates)) {
    const spec = FEATURE_GATES.get(name);
    if (!spec) throw new ConfigError(from, `${from}: unrecognized feature gate: ${name} (kube-proxy v1.37's gate names are accepted; see kproxy --help)`);
    if (spec.locked && value !== spec.default) {
      throw new ConfigError(from, `${from}: cannot set feature gate ${name} to ${value}, feature is locked to ${spec.default}`);
    }
  }
  return gates;
}

/** A gate's effective value: as given, else its default. */
export function gateEnabled(gates: Record<string, boolean>, name: string): boolean {
  return gates[name] ?? FEATURE_GATES.get(name)?.default ?? false;
}
