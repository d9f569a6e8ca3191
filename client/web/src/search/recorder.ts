// Microphone recording as raw PCM with Web Audio (getUserMedia +
// ScriptProcessorNode). Not MediaRecorder: its Opus/WebM is not decodable by
// the server. Not AudioWorklet: it needs a module URL, and the app's CSP
// (default-src 'self') forbids Blob URL modules.
import { concatBlocks, encodeWav } from "./wav";

export const MAX_RECORD_SECONDS = 10;

export class PcmRecorder {
  private stream: MediaStream | null = null;
  private ctx: AudioContext | null = null;
  private node: ScriptProcessorNode | null = null;
  private source: MediaStreamAudioSourceNode | null = null;
  private blocks: Float32Array[] = [];
  private samples = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  sampleRate = 48_000;

  /** `onLimit` runs when the maximum length is reached (the caller then calls `stop`). */
  async start(onLimit: () => void): Promise<void> {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const ctx = new AudioContext();
    this.ctx = ctx;
    this.sampleRate = ctx.sampleRate;
    if (ctx.state === "suspended") await ctx.resume().catch(() => undefined);
    this.source = ctx.createMediaStreamSource(this.stream);
    this.node = ctx.createScriptProcessor(4096, 1, 1);
    const limit = Math.round(MAX_RECORD_SECONDS * ctx.sampleRate);
    this.node.onaudioprocess = (e) => {
      if (this.samples >= limit) return;
      const data = e.inputBuffer.getChannelData(0);
      const take = Math.min(data.length, limit - this.samples);
      this.blocks.push(new Float32Array(data.subarray(0, take)));
      this.samples += take;
      if (this.samples >= limit) onLimit();
    };
    this.source.connect(this.node);
    // A ScriptProcessorNode only runs while connected to the destination; it
    // writes nothing to its output, so nothing is heard.
    this.node.connect(ctx.destination);
    this.timer = setTimeout(onLimit, MAX_RECORD_SECONDS * 1000 + 500);
  }

  /** Seconds recorded so far. */
  get seconds(): number {
    return this.samples / this.sampleRate;
  }

  /** Stops and returns the recording as 16-bit mono WAV. */
  async stop(): Promise<{ wav: Uint8Array; seconds: number }> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const seconds = this.seconds;
    this.node?.disconnect();
    this.source?.disconnect();
    if (this.node) this.node.onaudioprocess = null;
    this.stream?.getTracks().forEach((t) => t.stop());
    const rate = this.sampleRate;
    await this.ctx?.close().catch(() => undefined);
    this.ctx = null;
    this.stream = null;
    const wav = encodeWav(concatBlocks(this.blocks), rate);
    this.blocks = [];
    this.samples = 0;
    return { wav, seconds };
  }
}
