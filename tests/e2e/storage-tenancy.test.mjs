// Issue 7: tenant isolation for files in the default `org-files` bucket (storage/0004, 0100) and
// in the fixture bucket `org-scratch` (tests/fixtures/0020_storage.sql, which allows updates so
// that moves can be shown both allowed and refused). The organization and role come from the
// caller's profile (the domain's truth, tests/fixtures/0100_domain.sql users) or, for callers
// without a profile, from JWT claims: top-level (custom access-token hook) or app_metadata.
// Delivery proof ({org}/deliveries/{delivery_id}/…) needs a real delivery of the caller's
// organization, assigned to the caller when the caller is a driver; deliveries can only be
// assigned to profiles, so proof is written by the fixture organizations' drivers.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { SERVICE_ROLE_KEY, client, userClient } from './env.mjs';
import { ORG, NO_ORG_USER, as, fixtureIds, service, unique, userId } from './domain.mjs';

const orgA = randomUUID();
const orgB = randomUUID();
const admin = client(SERVICE_ROLE_KEY).storage;

/** A member of `org` with `role`, its claims added by the access-token hook (top level). */
const member = (org, role) => userClient(randomUUID(), { organization_id: org, org_role: role }).storage;
/** The same, with the claims in app_metadata (set by service-role tools). */
const memberViaAppMetadata = (org, role) =>
  userClient(randomUUID(), { app_metadata: { organization_id: org, org_role: role } }).storage;

const driverA = member(orgA, 'driver');
const adminA = member(orgA, 'admin');
const managerA = memberViaAppMetadata(orgA, 'manager');
const viewerA = member(orgA, 'viewer');

const proofB = `${orgB}/deliveries/d-b/signature.png`;
const photoB = `${orgB}/deliveries/d-b/photo-1.jpg`;

async function ok(promise) {
  const { data, error } = await promise;
  assert.equal(error, null, error && JSON.stringify({ message: error.message, ...error }));
  return data;
}

function refused(result, ...codes) {
  assert.ok(result.error, `expected one of ${codes}, got ${JSON.stringify(result.data)}`);
  assert.ok(codes.includes(result.error.code), `${result.error.code}: ${result.error.message}`);
}

async function contentOf(bucket, path) {
  const blob = await ok(admin.from(bucket).download(path));
  return Buffer.from(await blob.arrayBuffer()).toString('utf8');
}

before(async () => {
  // Organization B's delivery proof, stored by a service tool (claims-only organizations have no
  // deliveries a driver could be assigned to).
  await ok(admin.from('org-files').upload(proofB, Buffer.from('signature of B'), { contentType: 'image/png' }));
  await ok(admin.from('org-files').upload(photoB, Buffer.from('photo of B'), { contentType: 'image/jpeg' }));
  await ok(admin.from('org-scratch').upload(`${orgB}/notes/b.txt`, Buffer.from('scratch of B')));
});

describe('org-files: members of the organization', () => {
  test('members read, list and sign delivery proof under {org}/deliveries/{id}/', async () => {
    const path = `${orgA}/deliveries/d-1/signature.png`;
    await ok(admin.from('org-files').upload(path, Buffer.from('signature of A'), { contentType: 'image/png' }));
    const viewed = await ok(viewerA.from('org-files').download(path));
    assert.equal(Buffer.from(await viewed.arrayBuffer()).toString(), 'signature of A');
    const listed = await ok(managerA.from('org-files').list(`${orgA}/deliveries/d-1`));
    assert.deepEqual(listed.map((entry) => entry.name), ['signature.png']);
    const { signedUrl } = await ok(viewerA.from('org-files').createSignedUrl(path, 60));
    assert.equal(await (await fetch(signedUrl)).text(), 'signature of A');
  });

  test('a driver writes only delivery proof; a viewer writes nothing', async () => {
    refused(await driverA.from('org-files').upload(`${orgA}/bottles/b-1/photo.jpg`, Buffer.from('x')), 'AccessDenied');
    refused(await driverA.from('org-files').upload(`${orgA}/deliveries/loose.png`, Buffer.from('x')), 'AccessDenied');
    refused(await viewerA.from('org-files').upload(`${orgA}/deliveries/d-3/signature.png`, Buffer.from('x')), 'AccessDenied');
    await ok(managerA.from('org-files').upload(`${orgA}/bottles/b-1/photo.jpg`, Buffer.from('bottle')));
  });

  test('only admins delete', async () => {
    const path = `${orgA}/deliveries/d-4/photo-1.jpg`;
    await ok(admin.from('org-files').upload(path, Buffer.from('p')));
    assert.deepEqual(await ok(driverA.from('org-files').remove([path])), []);
    assert.deepEqual(await ok(managerA.from('org-files').remove([path])), []);
    assert.equal((await admin.from('org-files').exists(path)).data, true);
    const removed = await ok(adminA.from('org-files').remove([path]));
    assert.deepEqual(removed.map((row) => row.name), [path]);
    assert.equal((await admin.from('org-files').exists(path)).data, false);
  });

  test('a member copies within the organization (INSERT + SELECT)', async () => {
    const source = `${orgA}/deliveries/d-1/signature.png`;
    const copy = await ok(managerA.from('org-files').copy(source, `${orgA}/archive/d-1-signature.png`));
    assert.equal(copy.path, `org-files/${orgA}/archive/d-1-signature.png`);
  });
});

describe('org-files: organization A cannot touch organization B', () => {
  test('cannot list B’s folders', async () => {
    assert.deepEqual(await ok(adminA.from('org-files').list(`${orgB}/deliveries/d-b`)), []);
    const root = await ok(adminA.from('org-files').list());
    assert.ok(!root.some((entry) => entry.name === orgB), 'B’s top folder is invisible');
    assert.ok(root.some((entry) => entry.name === orgA), 'A’s own folder is listed');
    const v2 = await ok(adminA.from('org-files').listV2({ prefix: `${orgB}/` }));
    assert.deepEqual(v2.objects, []);
  });

  test('cannot read, inspect or sign B’s files', async () => {
    refused(await adminA.from('org-files').download(proofB), 'NoSuchKey');
    refused(await adminA.from('org-files').info(proofB), 'NoSuchKey');
    assert.equal((await adminA.from('org-files').exists(proofB)).data, false);
    refused(await adminA.from('org-files').createSignedUrl(proofB, 60), 'NoSuchKey');
    const batch = await ok(adminA.from('org-files').createSignedUrls([proofB, photoB], 60));
    assert.ok(batch.every((item) => item.signedUrl === null && item.error));
  });

  test('cannot overwrite B’s files or add files to B’s folders', async () => {
    refused(await adminA.from('org-files').upload(proofB, Buffer.from('forged'), { upsert: true }), 'AccessDenied');
    refused(await adminA.from('org-files').update(proofB, Buffer.from('forged')), 'AccessDenied');
    refused(await driverA.from('org-files').upload(`${orgB}/deliveries/d-b/extra.png`, Buffer.from('x')), 'AccessDenied');
    refused(await driverA.from('org-files').createSignedUploadUrl(`${orgB}/deliveries/d-b/extra.png`), 'AccessDenied');
    assert.equal(await contentOf('org-files', proofB), 'signature of B');
  });

  test('cannot move, copy or delete B’s files', async () => {
    refused(await adminA.from('org-files').move(proofB, `${orgA}/stolen.png`), 'NoSuchKey');
    refused(await adminA.from('org-files').copy(proofB, `${orgA}/stolen.png`), 'NoSuchKey');
    assert.deepEqual(await ok(adminA.from('org-files').remove([proofB, photoB])), []);
    assert.equal(await contentOf('org-files', proofB), 'signature of B');
    assert.equal(await contentOf('org-files', photoB), 'photo of B');
    assert.equal((await admin.from('org-files').exists(`${orgA}/stolen.png`)).data, false);
  });

  test('a token without organization claims sees nothing', async () => {
    const stranger = userClient(randomUUID()).storage;
    refused(await stranger.from('org-files').download(proofB), 'NoSuchKey');
    assert.deepEqual(await ok(stranger.from('org-files').list(orgB)), []);
  });
});

describe('org-scratch: moves are allowed inside the organization only', () => {
  test('A moves its own file, but not B’s, and not into B’s folder', async () => {
    const files = adminA.from('org-scratch');
    await ok(files.upload(`${orgA}/notes/a.txt`, Buffer.from('scratch of A')));
    await ok(files.move(`${orgA}/notes/a.txt`, `${orgA}/notes/renamed.txt`));
    assert.equal(await contentOf('org-scratch', `${orgA}/notes/renamed.txt`), 'scratch of A');
    refused(await files.move(`${orgB}/notes/b.txt`, `${orgA}/notes/taken.txt`), 'NoSuchKey');
    refused(await files.move(`${orgA}/notes/renamed.txt`, `${orgB}/notes/planted.txt`), 'AccessDenied');
    assert.equal(await contentOf('org-scratch', `${orgA}/notes/renamed.txt`), 'scratch of A');
    assert.equal(await contentOf('org-scratch', `${orgB}/notes/b.txt`), 'scratch of B');
    assert.equal((await admin.from('org-scratch').exists(`${orgB}/notes/planted.txt`)).data, false);
  });
});

describe('org-files: the domain profile decides, not the token', () => {
  let proofPath;
  // Deliveries of this run: org A's driver's, org A's second driver's, and one of org B.
  let own;
  let colleagues;
  let otherOrgs;
  const newDelivery = async (org, customer, driver) => {
    const row = await ok(
      service()
        .from('deliveries')
        .insert({ organization_id: ORG[org], customer_id: customer, driver_id: driver, delivery_number: unique('proof') })
        .select('id')
        .single(),
    );
    return row.id;
  };
  const proof = (delivery, org = 'a') => `${ORG[org]}/deliveries/${delivery}/${unique('proof')}.png`;

  before(async () => {
    const [a, b] = [await fixtureIds('a'), await fixtureIds('b')];
    own = await newDelivery('a', a.weld, userId('a', 'driver'));
    colleagues = await newDelivery('a', a.beer, userId('a', 'second driver'));
    otherOrgs = await newDelivery('b', b.weld, userId('b', 'driver'));
    proofPath = `${ORG.a}/deliveries/${a.d1}/signature-${randomUUID().slice(0, 8)}.png`;
    // A plain user token (no organization claims): the profile of org A's driver decides; the
    // fixture's D1 is on that driver's route.
    await ok(as('a', 'driver').storage.from('org-files').upload(proofPath, Buffer.from('proof of A'), { contentType: 'image/png' }));
  });

  test('a signature cannot be overwritten once written, not even by its driver', async () => {
    const path = proof(own);
    const files = as('a', 'driver').storage.from('org-files');
    await ok(files.upload(path, Buffer.from('original'), { contentType: 'image/png' }));
    refused(await files.upload(path, Buffer.from('forged')), 'ResourceAlreadyExists');
    refused(await files.upload(path, Buffer.from('forged'), { upsert: true }), 'AccessDenied');
    refused(await files.update(path, Buffer.from('forged')), 'AccessDenied');
    refused(await as('a', 'admin').storage.from('org-files').update(path, Buffer.from('forged')), 'AccessDenied');
    const signed = await ok(files.createSignedUploadUrl(proof(own)));
    assert.ok(signed.token);
    refused(await files.createSignedUploadUrl(path, { upsert: true }), 'AccessDenied');
    assert.equal(await contentOf('org-files', path), 'original');
  });

  test('a driver writes proof only for an existing delivery of their organization assigned to them', async () => {
    const driver = as('a', 'driver').storage.from('org-files');
    refused(await driver.upload(proof(randomUUID()), Buffer.from('x')), 'AccessDenied');
    refused(await driver.upload(`${ORG.a}/deliveries/not-a-delivery/x.png`, Buffer.from('x')), 'AccessDenied');
    refused(await driver.upload(proof(colleagues), Buffer.from('x')), 'AccessDenied');
    refused(await driver.upload(proof(otherOrgs), Buffer.from('x')), 'AccessDenied');
    refused(await driver.createSignedUploadUrl(proof(randomUUID())), 'AccessDenied');
    // The colleague's stop takes the colleague's proof.
    await ok(as('a', 'second driver').storage.from('org-files').upload(proof(colleagues), Buffer.from('theirs')));
    // B's delivery does not become A's by being named under A's folder, nor B's driver's.
    refused(await as('b', 'driver').storage.from('org-files').upload(proof(otherOrgs), Buffer.from('x')), 'AccessDenied');
    await ok(as('b', 'driver').storage.from('org-files').upload(proof(otherOrgs, 'b'), Buffer.from('b')));
  });

  test('the office adds proof to any delivery of its organization, but not to a made-up one', async () => {
    const manager = as('a', 'manager').storage.from('org-files');
    await ok(manager.upload(proof(colleagues), Buffer.from('office copy')));
    refused(await manager.upload(proof(randomUUID()), Buffer.from('x')), 'AccessDenied');
    refused(await manager.upload(proof(otherOrgs), Buffer.from('x')), 'AccessDenied');
  });

  test('a deleted delivery takes no more proof', async () => {
    const gone = await newDelivery('a', (await fixtureIds('a')).weld, userId('a', 'driver'));
    const driver = as('a', 'driver').storage.from('org-files');
    await ok(driver.upload(proof(gone), Buffer.from('before')));
    await ok(service().from('deliveries').update({ deleted_at: new Date().toISOString() }).eq('id', gone));
    refused(await driver.upload(proof(gone), Buffer.from('after')), 'AccessDenied');
  });

  test('members of the profile’s organization read the proof; the driver cannot overwrite it', async () => {
    const viewed = await ok(as('a', 'viewer').storage.from('org-files').download(proofPath));
    assert.equal(Buffer.from(await viewed.arrayBuffer()).toString(), 'proof of A');
    const folder = proofPath.slice(0, proofPath.lastIndexOf('/'));
    const listed = await ok(as('a', 'manager').storage.from('org-files').list(folder));
    assert.ok(listed.some((entry) => proofPath.endsWith(`/${entry.name}`)));
    refused(await as('a', 'driver').storage.from('org-files').upload(proofPath, Buffer.from('forged'), { upsert: true }), 'AccessDenied');
    refused(await as('a', 'driver').storage.from('org-files').update(proofPath, Buffer.from('forged')), 'AccessDenied');
    assert.deepEqual(await ok(as('a', 'driver').storage.from('org-files').remove([proofPath])), []);
    assert.equal(await contentOf('org-files', proofPath), 'proof of A');
  });

  test('organization B’s members cannot read, sign, list, write or delete A’s files', async () => {
    const files = as('b', 'admin').storage.from('org-files');
    refused(await files.download(proofPath), 'NoSuchKey');
    refused(await files.createSignedUrl(proofPath, 60), 'NoSuchKey');
    assert.deepEqual(await ok(files.list(ORG.a)), []);
    refused(await files.upload(proofPath, Buffer.from('forged'), { upsert: true }), 'AccessDenied');
    refused(await as('b', 'driver').storage.from('org-files').upload(`${ORG.a}/deliveries/x/extra.png`, Buffer.from('x')), 'AccessDenied');
    assert.deepEqual(await ok(files.remove([proofPath])), []);
    assert.equal(await contentOf('org-files', proofPath), 'proof of A');
  });

  test('claims naming another organization do not beat the profile', async () => {
    // B's admin presents a token whose claims say "admin of A": the profile (B) still decides.
    const forged = userClient(userId('b', 'admin'), { organization_id: ORG.a, org_role: 'admin' }).storage.from('org-files');
    refused(await forged.download(proofPath), 'NoSuchKey');
    assert.deepEqual(await ok(forged.remove([proofPath])), []);
    // A user without a profile and without claims sees nothing.
    refused(await userClient(NO_ORG_USER).storage.from('org-files').download(proofPath), 'NoSuchKey');
    assert.equal(await contentOf('org-files', proofPath), 'proof of A');
  });
});
