// V8 settings for a long-running agent on a small device, applied by `sensorlet run` itself so that
// every way of launching it gets them. (Those that must be set before V8 starts,
// --max-semi-space-size=1 --max-old-space-size=512 --v8-pool-size=2, are on the command lines:
// npm start, the bin's shebang, the DaemonSet; see README "Command line".)
//
// An agent runs a lot of code once (parsing the CLI and manifests, compiling schemas, wiring
// sinks) and then a small loop for ever. V8 keeps the bytecode of a function until it has gone
// unused for `bytecode-old-age` major GCs (5) and never flushes baseline (Sparkplug) code, so the
// start-up code would stay resident for minutes. Flushing after one unused major GC measured about
// 6 MB less RSS with 100 sensors; a function that runs again (a manifest edited later) is simply
// compiled again. Both flags are read at every GC, so setting them at run time takes effect.
import v8 from 'node:v8';

export function applyMemoryPolicy(): void {
  v8.setFlagsFromString('--bytecode-old-age=1');
  v8.setFlagsFromString('--flush-baseline-code');
}
