// `sensorlet outbox stats`: read straight from the state dir, so it works with the agent stopped.
import { readOutboxStats } from '../../pkg/outbox/stats.js';

export async function outboxStatsCommand(stateDir: string, output: string | undefined): Promise<number> {
  const stats = await readOutboxStats(stateDir);
  if (output === 'json') {
    console.log(JSON.stringify(stats, null, 2));
    return 0;
  }
  if (stats.length === 0) {
    console.log(`no outboxes under ${stateDir}`);
    return 0;
  }
  const rows = [['OUTBOX', 'READINGS', 'BYTES', 'CHUNKS', 'OLDEST', 'DROPPED', 'CORRUPT']];
  for (const item of stats) {
    const dropped = Object.entries(item.dropped).filter(([, count]) => count > 0).map(([reason, count]) => `${reason}=${count}`).join(',') || '0';
    rows.push([item.sink, String(item.readings), String(item.bytes), String(item.chunks), item.oldestTime ? new Date(item.oldestTime).toISOString() : '-', dropped, String(item.corruptChunks)]);
  }
  const widths = rows[0].map((_cell, column) => Math.max(...rows.map((row) => row[column].length)));
  for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column])).join('   ').trimEnd());
  return 0;
}
