// IPFS Cluster's REST API through @nftstorage/ipfs-cluster, an independently written client
// (nft.storage's). Asserts on every answer; prints what it added as one JSON line so the Rust
// test can check it against the real IPFS node. Usage: node rest-client.mjs <api url> <cid>
import assert from 'node:assert/strict'
import { Cluster } from '@nftstorage/ipfs-cluster'

const [url, existing] = process.argv.slice(2)
const cluster = new Cluster(url)

const version = await cluster.version()
assert.match(version, /^\d+\.\d+\.\d+/)

const info = await cluster.info()
assert.ok(info.id.startsWith('12D3Koo'), `peer id ${info.id}`)
assert.ok(Array.isArray(info.clusterPeers) && info.clusterPeers.includes(info.id))
assert.ok(info.ipfs.id, 'the IPFS node is known')

const peers = await cluster.peerList()
assert.equal(peers.length, 1)
assert.equal(peers[0].id, info.id)

// add: one file, the client's defaults (CIDv1, raw leaves), stream-channels=false.
const file = new File(['hello from a third-party client\n'], 'hello.txt')
const added = await cluster.add(file, { name: 'greeting', metadata: { from: 'js' } })
assert.equal(added.name, 'hello.txt')
assert.ok(added.cid.startsWith('bafy'), `a v1 CID: ${added.cid}`)

// addDirectory: wrapped in a directory; every file and the root come back.
const dir = await cluster.addDirectory([
  new File(['first file\n'], 'dir/one.txt'),
  new File(['second file\n'], 'dir/two.txt')
])
assert.ok(Array.isArray(dir) && dir.length >= 3, JSON.stringify(dir))
const names = dir.map((d) => d.name)
assert.ok(names.includes('dir/one.txt') && names.includes('dir/two.txt'), names.join(','))
const root = dir[dir.length - 1]

// pin / allocation / status / statusAll / recover / unpin of a CID that is in IPFS.
const pinned = await cluster.pin(existing, { name: 'existing', replicationFactorMin: 1, replicationFactorMax: 1 })
assert.equal(pinned.cid, existing)
const allocation = await cluster.allocation(existing)
assert.equal(allocation.cid, existing)
assert.equal(allocation.name, 'existing')
assert.deepEqual(allocation.allocations, [info.id])

const deadline = Date.now() + 60_000
let status
for (;;) {
  status = await cluster.status(existing)
  if (status.peerMap[info.id]?.status === 'pinned') break
  assert.ok(Date.now() < deadline, `still ${JSON.stringify(status)}`)
  await new Promise((resolve) => setTimeout(resolve, 200))
}
assert.equal(status.cid, existing)
const local = await cluster.status(existing, { local: true })
assert.deepEqual(Object.keys(local.peerMap), [info.id])

const all = (await cluster.statusAll()).map((s) => s.cid)
for (const cid of [existing, added.cid, root.cid]) assert.ok(all.includes(cid), `${cid} in ${all}`)
const onlyPinned = (await cluster.statusAll({ filter: 'pinned', cids: [existing] })).map((s) => s.cid)
assert.deepEqual(onlyPinned, [existing])

const recovered = await cluster.recover(existing)
assert.equal(recovered.cid, existing)

const metricNames = await cluster.metricNames()
for (const m of ['ping', 'freespace']) assert.ok(metricNames.includes(m), metricNames.join(','))

// Bad input is an error the client reports, not a success.
await assert.rejects(cluster.pin('not-a-cid'), /400/)
await assert.rejects(cluster.allocation('bafkqaaa'), /404/)

await cluster.unpin(existing)
await assert.rejects(cluster.allocation(existing), /404/)

console.log(JSON.stringify({ file: added.cid, directory: root.cid, files: dir.slice(0, -1).map((d) => d.cid) }))
