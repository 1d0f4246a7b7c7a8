/**
 * What a benchmark reads about a server process on Linux, from /proc: resident memory (VmRSS,
 * VmHWM, and PSS for a group of processes sharing memory), CPU time, child processes, and
 * whether it holds a UDP port. Every reader returns undefined (or an empty list) once the process
 * is gone rather than throwing.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** A field of /proc/PID/status in kB (VmRSS, VmHWM), or undefined. */
export function procStatusKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'latin1'),
    );
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * Proportional set size of a process in kB (/proc/PID/smaps_rollup): its private pages plus its
 * share of the pages it shares. Summed over a group of processes that share memory (Kamailio's
 * shared memory segment, mapped by all its processes) it counts each page once, where a sum of
 * VmRSS would count the shared pages once per process.
 */
export function pssKb(pid: number): number | undefined {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`, 100 on Linux). */
const CLK_TCK = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** The fields of /proc/PID/stat after the command name (field 3 is index 0). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name is in parentheses and may itself contain spaces or parentheses.
    return text
      .slice(text.lastIndexOf(')') + 2)
      .trim()
      .split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU time of a process so far, in ms (undefined once it is gone). */
export function cpuMs(pid: number): number | undefined {
  const f = statFields(pid);
  if (f === undefined) return undefined;
  // utime and stime are fields 14 and 15 of /proc/PID/stat.
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/**
 * Time the thread group leader of `pid` spent runnable but waiting for a CPU so far, ms (second
 * field of /proc/PID/schedstat). For Node.js that is the JavaScript thread.
 */
export function runQueueWaitMs(pid: number): number | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/schedstat`, 'latin1').trim().split(/\s+/);
    const ns = Number(f[1]);
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/** The pids whose parent is `pid` (direct children only). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    // Field 4 of /proc/PID/stat is the parent pid.
    const f = statFields(Number(name));
    if (f !== undefined && Number(f[1]) === pid) out.push(Number(name));
  }
  return out;
}

/**
 * True when process `pid` holds a UDP socket bound to 127.0.0.1:port: /proc/net/udp gives the
 * socket's local address (hex; 0100007F on little-endian hosts) and inode, /proc/PID/fd the
 * process's sockets. Unlike a probing bind this leaves the port alone, and a socket another
 * process bound to the same port does not count.
 */
export function udpBoundBy(pid: number, port: number): boolean {
  const want = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    const inodes = readFileSync('/proc/net/udp', 'latin1')
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(want) === true && /^(0100007F|7F000001):/.test(f[1]))
      .map((f) => `socket:[${f[9]}]`);
    if (inodes.length === 0) return false;
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return inodes.includes(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false;
  }
}

/**
 * Datagrams the kernel dropped so far on the UDP sockets bound to 127.0.0.1:port (the last column
 * of /proc/net/udp: the socket's receive buffer was full), or undefined when there is none.
 */
export function udpDrops(port: number): number | undefined {
  const want = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    const rows = readFileSync('/proc/net/udp', 'latin1')
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(want) === true && /^(0100007F|7F000001):/.test(f[1]));
    if (rows.length === 0) return undefined;
    return rows.reduce((sum, f) => sum + Number(f[f.length - 1]), 0);
  } catch {
    return undefined;
  }
}

/** UDP datagrams dropped machine-wide for want of receive buffer (/proc/net/snmp RcvbufErrors). */
export function udpRcvbufErrors(): number | undefined {
  try {
    const lines = readFileSync('/proc/net/snmp', 'latin1')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    const i = names.indexOf('RcvbufErrors');
    return i < 0 ? undefined : Number(values[i]);
  } catch {
    return undefined;
  }
}

/** A kernel setting under /proc/sys as text (e.g. `net/core/rmem_max`), or undefined. */
export function procSys(path: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${path}`, 'latin1').trim();
  } catch {
    return undefined;
  }
}

export function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
