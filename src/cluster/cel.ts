// The part of CEL that DeviceClass selectors of GPU drivers use, enough for verify to say
// whether a class selects a node's devices: `device.driver == "…"`,
// `device.attributes["<domain>"].<name> == "…"` (or '…', or a bool/number), joined by `&&`.
// Anything else is "cannot tell" (undefined), never a guess. The device shape is
// resource.k8s.io/v1 Device (k8s.io/api resource/v1/types.go @v0.34.1): attributes keyed by
// qualified name, each one typed value; an unqualified name belongs to the driver's domain.

export interface SliceDevice {
  name: string;
  attributes?: Record<string, { string?: string; bool?: boolean; int?: number; version?: string }>;
}

const TERM =
  /^device\.(?:driver|attributes\[\s*(["'])([^"']+)\1\s*\]\.([A-Za-z0-9_]+))\s*==\s*(?:(["'])([^"']*)\4|(true|false)|(-?\d+))$/;

function attribute(device: SliceDevice, driver: string, domain: string, name: string): unknown {
  const attributes = device.attributes ?? {};
  const typed = attributes[`${domain}/${name}`] ?? (domain === driver ? attributes[name] : undefined);
  if (!typed) return undefined;
  return typed.string ?? typed.bool ?? typed.int ?? typed.version;
}

/** Whether the expression selects the device of `driver`; undefined when it is outside this subset. */
export function selects(expression: string, driver: string, device: SliceDevice): boolean | undefined {
  const terms = expression.split('&&').map((t) => t.trim());
  let all = true;
  for (const term of terms) {
    const match = TERM.exec(term);
    if (!match) return undefined;
    const [, , domain, name, , text, bool, int] = match;
    const want: unknown = text ?? (bool !== undefined ? bool === 'true' : Number(int));
    const have = domain === undefined ? driver : attribute(device, driver, domain, name as string);
    all &&= have === want;
  }
  return all;
}
