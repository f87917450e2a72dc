// The `doctor --json` report as a zod schema: the TypeScript type, the published
// JSON Schema (docs/schemas/doctor-report.schema.json) and the tests' validator all
// come from here. Changing a field's meaning needs a new schemaVersion.

import { z } from 'zod';

const check = z
  .strictObject({
    id: z.string().describe('stable dotted id, e.g. gvt.enabled'),
    status: z.enum(['pass', 'warn', 'fail']),
    evidence: z.string().describe('what was seen, naming the file or value'),
    fix: z.string().optional().describe('what to change; present whenever status is not pass'),
  })
  .describe('one verdict line');

const counts = z.record(z.string(), z.number().int().nonnegative());

export const doctorReportSchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    target: z.string().describe('the host read: ssh://user@host:port, root:/path or localhost'),
    mode: z.enum(['gvt-g', 'sriov', 'passthrough', 'none']).describe('what the hardware can do'),
    modeReason: z.string(),
    cpu: z
      .strictObject({
        vendor: z.string(),
        family: z.number().int(),
        model: z.number().int(),
        stepping: z.number().int().nullable(),
        modelName: z.string(),
        codename: z.string().nullable(),
        coreGeneration: z.number().int().nullable(),
        vmx: z.boolean(),
      })
      .nullable(),
    gpu: z
      .strictObject({
        bdf: z.string(),
        vendorId: z.string().regex(/^[0-9a-f]{4}$/),
        deviceId: z.string().regex(/^[0-9a-f]{4}$/),
        subsystemId: z.string().nullable(),
        platform: z.string().nullable(),
        platformName: z.string().nullable(),
        graphicsVer: z.number().int().nullable(),
        driver: z.string().nullable(),
        iommuGroup: z.number().int().nullable(),
        apertureMiB: z.number().int().nullable(),
      })
      .nullable()
      .describe('the Intel iGPU, or null when there is none'),
    vgpu: z.strictObject({
      predicted: counts.describe(
        'instances per mdev type from the kernel formula (gvt-g), sriov-vf count (sriov) or passthrough: 1',
      ),
      live: counts.describe('available_instances per mdev type, or enabled VFs, as the host reports now'),
    }),
    checks: z.array(check),
    host: z.strictObject({
      kernelRelease: z.string().nullable(),
      proxmoxVersion: z.string().nullable(),
      bootloader: z.enum(['grub', 'systemd-boot', 'unknown']),
      uefi: z.boolean(),
      secureBoot: z.boolean().nullable(),
    }),
    result: z.enum(['pass', 'warn', 'fail']).describe('the worst check status; exit code 1 when fail'),
  })
  .describe('igpu-split doctor --json');

export type DoctorReport = z.infer<typeof doctorReportSchema>;
