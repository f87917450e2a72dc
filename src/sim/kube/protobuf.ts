// Request bodies in application/vnd.kubernetes.protobuf. kubectl 1.32's typed clients
// send them (`kubectl create namespace`, the evictions of `kubectl drain`) and client-go
// v0.32.4 falls back to JSON after a 415 only for CBOR (rest/client.go
// UnsupportedMediaType), so a server must read them. The envelope is the magic
// "k8s\0" and a runtime.Unknown (apimachinery pkg/runtime/serializer/protobuf/protobuf.go
// and pkg/runtime/generated.proto, v0.34.1); field numbers of the messages below are from
// kubernetes/api core/v1 and policy/v1 generated.proto and apimachinery
// pkg/apis/meta/v1/generated.proto at v0.34.1. Kinds without a decoder here are refused
// with 415, naming JSON, as a server that cannot read the body does.

type Json = Record<string, unknown>;

type Field =
  | { name: string; type: 'string' | 'int' | 'bool' }
  | { name: string; type: 'message'; message: string }
  | { name: string; type: 'map' }
  | { name: string; type: 'time' };

interface Message {
  fields: Record<number, Field>;
  repeated?: string[];
}

const MESSAGES: Record<string, Message> = {
  ObjectMeta: {
    fields: {
      1: { name: 'name', type: 'string' },
      2: { name: 'generateName', type: 'string' },
      3: { name: 'namespace', type: 'string' },
      5: { name: 'uid', type: 'string' },
      6: { name: 'resourceVersion', type: 'string' },
      7: { name: 'generation', type: 'int' },
      8: { name: 'creationTimestamp', type: 'time' },
      11: { name: 'labels', type: 'map' },
      12: { name: 'annotations', type: 'map' },
      13: { name: 'ownerReferences', type: 'message', message: 'OwnerReference' },
      14: { name: 'finalizers', type: 'string' },
    },
    repeated: ['ownerReferences', 'finalizers'],
  },
  OwnerReference: {
    fields: {
      1: { name: 'kind', type: 'string' },
      3: { name: 'name', type: 'string' },
      4: { name: 'uid', type: 'string' },
      5: { name: 'apiVersion', type: 'string' },
      6: { name: 'controller', type: 'bool' },
      7: { name: 'blockOwnerDeletion', type: 'bool' },
    },
  },
  Namespace: {
    fields: {
      1: { name: 'metadata', type: 'message', message: 'ObjectMeta' },
      2: { name: 'spec', type: 'message', message: 'NamespaceSpec' },
      3: { name: 'status', type: 'message', message: 'NamespaceStatus' },
    },
  },
  NamespaceSpec: { fields: { 1: { name: 'finalizers', type: 'string' } }, repeated: ['finalizers'] },
  NamespaceStatus: { fields: { 1: { name: 'phase', type: 'string' } } },
  Eviction: {
    fields: {
      1: { name: 'metadata', type: 'message', message: 'ObjectMeta' },
      2: { name: 'deleteOptions', type: 'message', message: 'DeleteOptions' },
    },
  },
  DeleteOptions: {
    fields: {
      1: { name: 'gracePeriodSeconds', type: 'int' },
      2: { name: 'preconditions', type: 'message', message: 'Preconditions' },
      3: { name: 'orphanDependents', type: 'bool' },
      4: { name: 'propagationPolicy', type: 'string' },
      5: { name: 'dryRun', type: 'string' },
      6: { name: 'ignoreStoreReadErrorWithClusterBreakingPotential', type: 'bool' },
    },
    repeated: ['dryRun'],
  },
  Preconditions: {
    fields: { 1: { name: 'uid', type: 'string' }, 2: { name: 'resourceVersion', type: 'string' } },
  },
};

/** Which top-level kinds we can read, by apiVersion/kind. */
const TOP: Record<string, string> = { 'v1/Namespace': 'Namespace', 'policy/v1/Eviction': 'Eviction' };

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

export class ProtobufUnsupported extends Error {}

class Reader {
  private at = 0;
  private readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
  done(): boolean {
    return this.at >= this.bytes.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.at >= this.bytes.length) throw new ProtobufUnsupported('truncated protobuf varint');
      const byte = this.bytes[this.at++] as number;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  bytesField(): Buffer {
    const length = Number(this.varint());
    const slice = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return slice;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.at += 8;
    else if (wire === 2) this.bytesField();
    else if (wire === 5) this.at += 4;
    else throw new ProtobufUnsupported(`protobuf wire type ${wire} is not supported`);
  }
}

function decodeMessage(bytes: Buffer, name: string): Json {
  const message = MESSAGES[name] as Message;
  const out: Json = {};
  const reader = new Reader(bytes);
  while (!reader.done()) {
    const tag = Number(reader.varint());
    const field = message.fields[tag >> 3];
    if (!field) reader.skip(tag & 7);
    else if (field.type === 'map')
      out[field.name] = { ...((out[field.name] as Json | undefined) ?? {}), ...mapEntry(reader) };
    else setField(out, message, field.name, fieldValue(reader, field));
  }
  return out;
}

/** A scalar, message or time field's value; undefined for a zero Time (null in JSON: not set). */
function fieldValue(reader: Reader, field: Exclude<Field, { type: 'map' }>): unknown {
  if (field.type === 'string') return reader.bytesField().toString('utf8');
  if (field.type === 'int') return Number(BigInt.asIntN(64, reader.varint()));
  if (field.type === 'bool') return reader.varint() !== 0n;
  if (field.type === 'message') return decodeMessage(reader.bytesField(), field.message);
  const seconds = Number(decodeTime(reader.bytesField()));
  return seconds === 0 ? undefined : new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** One map entry (key 1, value 2), as a one-key object. */
function mapEntry(reader: Reader): Record<string, string> {
  const entry = new Reader(reader.bytesField());
  let key = '';
  let val = '';
  while (!entry.done()) {
    const t = Number(entry.varint());
    if (t >> 3 === 1) key = entry.bytesField().toString('utf8');
    else if (t >> 3 === 2) val = entry.bytesField().toString('utf8');
    else entry.skip(t & 7);
  }
  return { [key]: val };
}

function setField(out: Json, message: Message, name: string, value: unknown): void {
  if (message.repeated?.includes(name)) out[name] = [...((out[name] as unknown[]) ?? []), value];
  // Go's generated marshalers write empty strings and zeros too; JSON (omitempty) leaves them out.
  else if (value !== undefined && value !== '' && value !== 0) out[name] = value;
}

function decodeTime(bytes: Buffer): bigint {
  const reader = new Reader(bytes);
  let seconds = 0n;
  while (!reader.done()) {
    const tag = Number(reader.varint());
    if (tag >> 3 === 1) seconds = BigInt.asIntN(64, reader.varint());
    else reader.skip(tag & 7);
  }
  return seconds;
}

/** The JSON form of a protobuf request body; ProtobufUnsupported when it is a kind we cannot read. */
export function decodeKubeProtobuf(body: Buffer): Json {
  if (!body.subarray(0, 4).equals(MAGIC))
    throw new ProtobufUnsupported('the protobuf body lacks the k8s envelope');
  const reader = new Reader(body.subarray(4));
  let apiVersion = '';
  let kind = '';
  let raw: Buffer = Buffer.alloc(0);
  while (!reader.done()) {
    const tag = Number(reader.varint());
    const number = tag >> 3;
    if (number === 1) {
      const meta = new Reader(reader.bytesField());
      while (!meta.done()) {
        const t = Number(meta.varint());
        if (t >> 3 === 1) apiVersion = meta.bytesField().toString('utf8');
        else if (t >> 3 === 2) kind = meta.bytesField().toString('utf8');
        else meta.skip(t & 7);
      }
    } else if (number === 2) raw = reader.bytesField();
    else reader.skip(tag & 7);
  }
  const message = TOP[`${apiVersion}/${kind}`];
  if (!message) throw new ProtobufUnsupported(`no protobuf decoder for ${apiVersion}/${kind}`);
  return { apiVersion, kind, ...decodeMessage(raw, message) };
}
