// The human form of a doctor report.

import type { Check } from '../core/model.ts';
import { counted } from '../core/text.ts';
import type { DoctorReport } from '../host/doctor.ts';

const LABEL: Record<string, string> = {
  pass: 'PASS',
  warn: 'WARN',
  pending: 'WAIT',
  unreachable: 'DOWN',
  fail: 'FAIL',
};

export function renderDoctor(report: DoctorReport): string {
  const lines: string[] = [`igpu-split doctor — ${report.target}`, ''];
  const row = (label: string, text: string) => lines.push(`  ${label.padEnd(7)} ${text}`);

  const host = report.host;
  const boot = host.uefi
    ? `UEFI, Secure Boot ${host.secureBoot === null ? 'unknown' : host.secureBoot ? 'on' : 'off'}`
    : 'legacy BIOS';
  row(
    'Host',
    `${host.proxmoxVersion ? `Proxmox VE ${host.proxmoxVersion}` : 'not Proxmox VE'}, kernel ${host.kernelRelease ?? 'unknown'}, ${host.bootloader}, ${boot}`,
  );
  if (report.cpu) {
    const cpu = report.cpu;
    const what = [cpu.codename, cpu.coreGeneration ? `Core gen ${cpu.coreGeneration}` : null]
      .filter(Boolean)
      .join(', ');
    row('CPU', `${cpu.modelName}${what ? ` — ${what}` : ''}`);
  }
  if (report.gpu) {
    const gpu = report.gpu;
    const aperture = gpu.apertureMiB === null ? '' : `, aperture ${gpu.apertureMiB} MB`;
    const group = gpu.iommuGroup === null ? '' : `, IOMMU group ${gpu.iommuGroup}`;
    row(
      'iGPU',
      `${gpu.bdf} ${gpu.vendorId}:${gpu.deviceId} ${gpu.platformName ?? 'unknown platform'} — driver ${gpu.driver ?? 'none'}${group}${aperture}`,
    );
  }
  row('Mode', `${report.mode} — ${report.modeReason}`);
  const predicted = Object.entries(report.vgpu.predicted);
  if (predicted.length > 0) {
    const live = report.vgpu.live;
    row(
      'vGPUs',
      predicted
        .map(([type, n]) => `${type}: ${n}${live[type] === undefined ? '' : ` (live ${live[type]})`}`)
        .join(', '),
    );
  }
  lines.push('', renderChecks(report.checks));
  return lines.join('\n');
}

/** A check list with its summary line, as doctor and host verify print it. */
export function renderChecks(checks: readonly (Omit<Check, 'status'> & { status: string })[]): string {
  const lines = ['  Checks'];
  const width = Math.max(...checks.map((c) => c.id.length));
  for (const check of checks) {
    lines.push(`  ${LABEL[check.status]}  ${check.id.padEnd(width)}  ${check.evidence}`);
    if (check.fix) lines.push(`        ${' '.repeat(width)}  fix: ${check.fix}`);
  }
  const count = (status: string) => checks.filter((c) => c.status === status).length;
  const warnings = count('warn');
  // Pending and unreachable links are said only when there are any (verify's chains).
  const more = [
    ...(count('unreachable') > 0 ? [`${count('unreachable')} unreachable`] : []),
    ...(count('pending') > 0 ? [`${count('pending')} pending`] : []),
  ];
  lines.push(
    '',
    `  ${[`${count('fail')} failed`, ...more, counted(warnings, 'warning'), `${count('pass')} passed`].join(', ')}`,
    '',
  );
  return lines.join('\n');
}
