/** The few protobuf wire-format primitives the streaming reader and writer need. */

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

export function encodeVarint(n: number): Uint8Array {
  const out = new Uint8Array(varintSize(n));
  let i = 0;
  while (n >= 0x80) {
    out[i++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[i] = n;
  return out;
}

/** Tag and length prefix of a length-delimited field. */
export function lenPrefix(field: number, length: number): Uint8Array {
  const tag = encodeVarint(field * 8 + WIRE_LEN);
  const len = encodeVarint(length);
  const out = new Uint8Array(tag.length + len.length);
  out.set(tag);
  out.set(len, tag.length);
  return out;
}
