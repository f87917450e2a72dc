// The igpu-split library: everything the CLI does, callable without printing.

export { CapturedRoot } from './access/captured-root.ts';
export type { CommandResult, DirEntry, EntryType, HostAccess } from './access/host.ts';
export { HostError } from './access/host.ts';
export { connectSsh, type SshOptions } from './access/ssh.ts';
export { captureHost } from './capture/capture.ts';
export { IgpuSplitError, TargetError, UsageError } from './core/errors.ts';
export type { Check, CheckStatus, Disturbance, Layer, Step } from './core/model.ts';
export { type ApplyResult, applyHostPlan } from './host/apply.ts';
export { type DoctorReport, doctorReport, runDoctor } from './host/doctor.ts';
export type { HostFacts } from './host/facts.ts';
export { gatherHostFacts } from './host/gather.ts';
export { hostLayer } from './host/layer.ts';
export { type HostPlan, planHost } from './host/plan.ts';
export { rollbackHost } from './host/rollback.ts';
export { type HostVerdict, hostVerdict, type Mode } from './host/verdict.ts';
export { verifyHost } from './host/verify.ts';
export { predictGvtTypes } from './knowledge/gvt.ts';
