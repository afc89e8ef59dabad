import { describe, expect, it } from 'vitest';
import { bytes, defaultAddName, droppedTarget, errorText, healthLine, invitedPeers, metricOf, pinGroups, rate, short, statusText, timeLeft, tone } from './format';

describe('format', () => {
  it('sizes in decimal units', () => {
    expect(bytes(0)).toBe('0 B');
    expect(bytes(999)).toBe('999 B');
    expect(bytes(1500)).toBe('1.5 kB');
    expect(bytes(25_000_000_000)).toBe('25 GB');
  });

  it('shortens long ids only', () => {
    expect(short('12D3KooWAbcdefghijklmnopqrstuvwxyz')).toBe('12D3KooW…uvwxyz');
    expect(short('short')).toBe('short');
    expect(short(null)).toBe('—');
  });

  it('takes a peer metric only while it is valid', () => {
    const now = 1_000_000;
    const m = {
      name: 'freespace', peer: 'a', value: '10', expire: (now + 5000) * 1e6, valid: true,
      weight: 0, partitionable: false, received_at: 0,
    };
    expect(metricOf([m], 'a', now)).toBe(m);
    expect(metricOf([m], 'b', now)).toBeNull();
    expect(metricOf([{ ...m, expire: (now - 1) * 1e6 }], 'a', now)).toBeNull();
    expect(metricOf([{ ...m, valid: false }], 'a', now)).toBeNull();
  });

  it('tells a peer of another release as such, not as an unknown state', () => {
    expect(statusText('undefined', 'unsupported by peer 12D3KooWOld (version 0.1.0)')).toBe('other version');
    expect(tone('undefined')).toBe('muted');
    expect(statusText('undefined', '')).toBe('undefined');
    expect(statusText('pinned', '')).toBe('pinned');
  });

  it('gives each status a tone', () => {
    expect(tone('pinned')).toBe('ok');
    expect(tone('pin_error')).toBe('bad');
    expect(tone('cluster_error')).toBe('bad');
    expect(tone('unexpectedly_unpinned')).toBe('bad');
    expect(tone('remote')).toBe('muted');
    expect(tone('pinning')).toBe('busy');
  });

  it('reads command errors and dropped text', () => {
    expect(errorText({ kind: 'bad_input', message: 'invalid CID' })).toBe('invalid CID');
    expect(errorText('plain')).toBe('plain');
    expect(droppedTarget('  bafyabc  and more')).toBe('bafyabc');
    expect(droppedTarget('   ')).toBeNull();
  });

  it('says how many peers are up', () => {
    expect(healthLine(1, 0)).toBe('1 peer online');
    expect(healthLine(3, 0)).toBe('3 peers online');
    expect(healthLine(3, 1)).toBe('1 of 3 unreachable');
  });
});

describe('pinGroups', () => {
  it('puts every status of the summary in one group, queued with running', () => {
    const s = {
      peer: 'p', peername: 'laptop', pins: 100, allocated_here: 90, pinned: 50, remote: 10,
      pin_queued: 7, pinning: 3, pin_error: 2, unpin_queued: 4, unpinning: 1, unpin_error: 5,
      cluster_error: 8,
    };
    const g = Object.fromEntries(pinGroups(s).map((x) => [x.key, x.count]));
    expect(g).toEqual({ pinned: 50, pinning: 10, unpinning: 5, errors: 15, remote: 10 });
  });
});

describe('adding', () => {
  it('names an add after what was dropped', () => {
    expect(defaultAddName(['/home/a/photos/'])).toBe('photos');
    expect(defaultAddName(['/home/a/x.mp4', '/home/a/y.mp4', '/tmp/z'])).toBe('x.mp4 and 2 more');
    expect(defaultAddName([])).toBe('');
  });

  it('tells the rate and the time left from the samples', () => {
    const r = rate([{ at: 1000, bytes: 0 }, { at: 2000, bytes: 500 }, { at: 3000, bytes: 2000 }]);
    expect(r).toBe(1000);
    expect(rate([{ at: 1000, bytes: 5 }])).toBe(0);
    expect(timeLeft(30_000, r)).toBe('30 s left');
    expect(timeLeft(600_000, r)).toBe('about 10 min left');
    expect(timeLeft(7_200_000, r)).toBe('about 2.0 h left');
    expect(timeLeft(100, 0)).toBe('');
  });
});

describe('ago and shareOf', () => {
  it('says how long ago in words, and a share of the largest', async () => {
    const { ago, shareOf } = await import('./format');
    const now = 1_000_000_000;
    expect(ago(now * 1e6, now)).toBe('just now');
    expect(ago((now - 12_000) * 1e6, now)).toBe('12 s ago');
    expect(ago((now - 180_000) * 1e6, now)).toBe('3 min ago');
    expect(ago((now - 3 * 3_600_000) * 1e6, now)).toBe('3 h ago');
    expect(shareOf(5, [10, 5, 0])).toBe(50);
    expect(shareOf(5, [])).toBe(100);
    expect(shareOf(0, [0])).toBe(0);
  });

  it('reads the peers an invitation names, and nothing from anything else', () => {
    const body = btoa(JSON.stringify({ bootstrap: ['/ip4/192.0.2.1/tcp/9096/p2p/A', 7], secret: 's' }))
      .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    expect(invitedPeers(`IPFS-Cluster-Invite:${body}`)).toEqual(['/ip4/192.0.2.1/tcp/9096/p2p/A']);
    expect(invitedPeers('ipfs-cluster-invite:!!!')).toEqual([]);
    expect(invitedPeers('/ip4/192.0.2.1/tcp/9096')).toEqual([]);
  });
});
