// 16-bit PCM mono WAV from Float32 samples (what Web Audio records).

/** Concatenates recorded blocks. */
export function concatBlocks(blocks: Float32Array[]): Float32Array {
  const n = blocks.reduce((s, b) => s + b.length, 0);
  const out = new Float32Array(n);
  let off = 0;
  for (const b of blocks) {
    out.set(b, off);
    off += b.length;
  }
  return out;
}

/** Clamps to [−1, 1] and scales to int16 (−1 → −32768, 1 → 32767). */
export function floatToInt16(x: number): number {
  const v = Math.max(-1, Math.min(1, Number.isNaN(x) ? 0 : x));
  return v < 0 ? Math.round(v * 32768) : Math.round(v * 32767);
}

export function encodeWav(samples: Float32Array, sampleRate: number): Uint8Array {
  const rate = Math.round(sampleRate);
  const dataBytes = samples.length * 2;
  const buf = new ArrayBuffer(44 + dataBytes);
  const v = new DataView(buf);
  const ascii = (off: number, s: string) => {
    for (let i = 0; i < s.length; i++) v.setUint8(off + i, s.charCodeAt(i));
  };
  ascii(0, "RIFF");
  v.setUint32(4, 36 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true); // byte rate
  v.setUint16(32, 2, true); // block align
  v.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  v.setUint32(40, dataBytes, true);
  for (let i = 0; i < samples.length; i++) v.setInt16(44 + i * 2, floatToInt16(samples[i]), true);
  return new Uint8Array(buf);
}
