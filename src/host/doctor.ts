// `doctor` as a library call: gather + verdict, shaped as the documented JSON report
// (src/host/doctor-schema.ts, docs/doctor-json.md). The CLI only prints it.

import type { HostAccess } from '../access/host.ts';
import { worstStatus } from '../core/model.ts';
import type { DoctorReport } from './doctor-schema.ts';
import type { HostFacts } from './facts.ts';
import { gatherHostFacts } from './gather.ts';
import { hostVerdict } from './verdict.ts';

export type { DoctorReport };

export async function runDoctor(host: HostAccess): Promise<DoctorReport> {
  const facts = await gatherHostFacts(host);
  return doctorReport(facts);
}

export function doctorReport(facts: HostFacts): DoctorReport {
  const verdict = hostVerdict(facts);
  return {
    schemaVersion: 1,
    target: facts.target,
    ...verdict,
    // A host's checks are never pending (no manual step lives on a host): the schema's three.
    checks: verdict.checks as DoctorReport['checks'],
    host: {
      kernelRelease: facts.kernelRelease ?? null,
      proxmoxVersion: facts.proxmox?.version ?? null,
      bootloader: facts.bootloader.kind,
      uefi: facts.firmware.uefi,
      secureBoot: facts.firmware.secureBoot ?? null,
    },
    result: worstStatus(verdict.checks) as DoctorReport['result'],
  };
}
