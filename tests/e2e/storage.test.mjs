// Issue 7: the Storage API through the real supabase-js `storage` client: buckets, uploads
// (multipart Blob and raw Buffer), downloads, info/exists, list, remove, move, copy, signed URLs
// (download and upload), public URLs, and Storage's error codes.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { API_URL, ANON_KEY, SERVICE_ROLE_KEY, SECRET_KEY, client, signJwt, userClient } from './env.mjs';

const admin = client(SERVICE_ROLE_KEY);
const storage = admin.storage;
const run = randomUUID().slice(0, 8);
const privateBucket = `e2e-private-${run}`;
const publicBucket = `e2e-public-${run}`;
const otherBucket = `e2e-other-${run}`;
const limitedBucket = `e2e-limited-${run}`;

/** Asserts a storage-js error carries Storage's code and the status inside the body. */
function assertStorageError(error, code, statusCode) {
  assert.ok(error, `expected ${code}, got success`);
  assert.equal(error.name, 'StorageApiError', String(error));
  assert.equal(error.code ?? error.error, code, JSON.stringify(error));
  if (statusCode) assert.equal(error.statusCode, statusCode, JSON.stringify(error));
  // Storage's quirk: the HTTP status of client errors is 400, the real one is in the body.
  assert.equal(error.status, 400, JSON.stringify(error));
}

async function ok(promise) {
  const { data, error } = await promise;
  assert.equal(error, null, error && JSON.stringify({ message: error.message, ...error }));
  return data;
}

async function text(blob) {
  return Buffer.from(await blob.arrayBuffer()).toString('utf8');
}

before(async () => {
  await ok(storage.createBucket(privateBucket, { public: false }));
  await ok(storage.createBucket(publicBucket, { public: true }));
  await ok(storage.createBucket(otherBucket, { public: false }));
  await ok(
    storage.createBucket(limitedBucket, {
      public: false,
      fileSizeLimit: '1KB',
      allowedMimeTypes: ['image/*', 'text/plain'],
    }),
  );
});

describe('buckets', () => {
  test('getBucket returns the settings, with "1KB" stored as bytes', async () => {
    const bucket = await ok(storage.getBucket(limitedBucket));
    assert.equal(bucket.id, limitedBucket);
    assert.equal(bucket.name, limitedBucket);
    assert.equal(bucket.public, false);
    assert.equal(bucket.file_size_limit, 1000);
    assert.deepEqual(bucket.allowed_mime_types, ['image/*', 'text/plain']);
    assert.equal(bucket.type, 'STANDARD');
  });

  test('listBuckets includes created buckets and filters by search', async () => {
    const all = await ok(storage.listBuckets());
    const ids = all.map((bucket) => bucket.id);
    for (const id of [privateBucket, publicBucket, 'org-files']) assert.ok(ids.includes(id), id);
    const found = await ok(storage.listBuckets({ search: `e2e-public-${run}` }));
    assert.deepEqual(
      found.map((bucket) => bucket.id),
      [publicBucket],
    );
  });

  test('createBucket twice is BucketAlreadyExists; a bad name is InvalidBucketName', async () => {
    const { error } = await storage.createBucket(privateBucket);
    assertStorageError(error, 'BucketAlreadyExists', '409');
    const bad = await storage.createBucket('no/slashes');
    assertStorageError(bad.error, 'InvalidBucketName', '400');
  });

  test('getBucket of a missing bucket is NoSuchBucket', async () => {
    const { error } = await storage.getBucket(`missing-${run}`);
    assertStorageError(error, 'NoSuchBucket', '404');
  });

  test('anon cannot create buckets (RLS on storage.buckets)', async () => {
    const { error } = await client(ANON_KEY).storage.createBucket(`anon-${run}`);
    assertStorageError(error, 'AccessDenied', '403');
  });

  test('updateBucket, emptyBucket and deleteBucket (ResourceNotEmpty first)', async () => {
    const id = `e2e-lifecycle-${run}`;
    await ok(storage.createBucket(id, { public: false }));
    await ok(storage.updateBucket(id, { public: true, fileSizeLimit: 2048, allowedMimeTypes: ['image/png'] }));
    const updated = await ok(storage.getBucket(id));
    assert.equal(updated.public, true);
    assert.equal(updated.file_size_limit, 2048);
    assert.deepEqual(updated.allowed_mime_types, ['image/png']);
    await ok(storage.from(id).upload('a/b.png', Buffer.from('png'), { contentType: 'image/png' }));
    const { error } = await storage.deleteBucket(id);
    assertStorageError(error, 'ResourceNotEmpty', '409');
    const emptied = await ok(storage.emptyBucket(id));
    assert.match(emptied.message, /emptied/i);
    assert.deepEqual(await ok(storage.from(id).list('a')), []);
    const deleted = await ok(storage.deleteBucket(id));
    assert.equal(deleted.message, 'Successfully deleted');
  });
});

describe('uploads and downloads', () => {
  test('upload of a Blob goes as multipart; download returns the bytes and type', async () => {
    const files = storage.from(privateBucket);
    const blob = new Blob(['hello from a blob'], { type: 'image/png' });
    const uploaded = await ok(files.upload('docs/blob.png', blob, { metadata: { kind: 'photo' } }));
    assert.equal(uploaded.path, 'docs/blob.png');
    assert.equal(uploaded.fullPath, `${privateBucket}/docs/blob.png`);
    assert.match(uploaded.id, /^[0-9a-f-]{36}$/);
    const downloaded = await ok(files.download('docs/blob.png'));
    assert.equal(await text(downloaded), 'hello from a blob');
    assert.equal(downloaded.type, 'image/png');
    const info = await ok(files.info('docs/blob.png'));
    assert.equal(info.contentType, 'image/png');
    assert.equal(info.size, 17);
    assert.equal(info.cacheControl, 'max-age=3600');
    assert.deepEqual(info.metadata, { kind: 'photo' });
    assert.equal(info.bucketId, privateBucket);
    assert.equal(info.name, 'docs/blob.png');
  });

  test('upload of a Buffer goes raw with content type, cache control and metadata', async () => {
    const files = storage.from(privateBucket);
    await ok(
      files.upload('docs/raw.txt', Buffer.from('raw bytes'), {
        contentType: 'text/plain',
        cacheControl: '60',
        metadata: { source: 'buffer' },
      }),
    );
    const info = await ok(files.info('docs/raw.txt'));
    assert.equal(info.contentType, 'text/plain');
    assert.equal(info.cacheControl, 'max-age=60');
    assert.deepEqual(info.metadata, { source: 'buffer' });
    assert.equal(await text(await ok(files.download('docs/raw.txt'))), 'raw bytes');
  });

  test('uploading onto an existing name is ResourceAlreadyExists; upsert replaces it', async () => {
    const files = storage.from(privateBucket);
    await ok(files.upload('docs/dup.txt', Buffer.from('one')));
    const { error } = await files.upload('docs/dup.txt', Buffer.from('two'));
    assertStorageError(error, 'ResourceAlreadyExists', '409');
    const before = await ok(files.info('docs/dup.txt'));
    await ok(files.upload('docs/dup.txt', Buffer.from('three'), { upsert: true }));
    const after = await ok(files.info('docs/dup.txt'));
    assert.notEqual(after.etag, before.etag, 'the ETag changes with the content');
    assert.notEqual(after.version, before.version, 'every write is a new version');
    assert.equal(await text(await ok(files.download('docs/dup.txt'))), 'three');
  });

  test('update replaces an object and creates a missing one', async () => {
    const files = storage.from(privateBucket);
    await ok(files.upload('docs/upd.txt', Buffer.from('before')));
    const updated = await ok(files.update('docs/upd.txt', new Blob(['after'], { type: 'text/plain' })));
    assert.equal(updated.path, 'docs/upd.txt');
    assert.equal(await text(await ok(files.download('docs/upd.txt'))), 'after');
    await ok(files.update('docs/created-by-update.txt', Buffer.from('new')));
    assert.equal(await text(await ok(files.download('docs/created-by-update.txt'))), 'new');
  });

  test('exists is true for an object and false (NoSuchKey) for a missing one', async () => {
    const files = storage.from(privateBucket);
    await ok(files.upload('exists/yes.txt', Buffer.from('y')));
    assert.deepEqual(await files.exists('exists/yes.txt'), { data: true, error: null });
    const missing = await files.exists('exists/no.txt');
    assert.equal(missing.data, false);
    assert.equal(missing.error.code, 'NoSuchKey');
  });

  test('downloading a missing object is NoSuchKey; a missing bucket is NoSuchBucket', async () => {
    const { error } = await storage.from(privateBucket).download('nope/missing.txt');
    assertStorageError(error, 'NoSuchKey', '404');
    const upload = await storage.from(`missing-${run}`).upload('x.txt', Buffer.from('x'));
    assertStorageError(upload.error, 'NoSuchBucket', '404');
  });

  test('uploads refused before their body is read still get the error, never "fetch failed"', async () => {
    // fetch sends the whole body before reading the answer; a server that answered early and
    // closed with bytes unread would have the kernel reset the connection under it.
    for (const size of [64 * 1024, 512 * 1024, 2 * 1024 * 1024]) {
      for (let attempt = 0; attempt < 6; attempt += 1) {
        const blob = new Blob([new Uint8Array(size)], { type: 'image/png' });
        const { error } = await storage.from(`missing-${run}`).upload(`photos/${size}-${attempt}.png`, blob);
        assertStorageError(error, 'NoSuchBucket', '404');
        const raw = await storage.from(`missing-${run}`).upload(`raw/${size}-${attempt}.bin`, Buffer.alloc(size));
        assertStorageError(raw.error, 'NoSuchBucket', '404');
      }
    }
  });

  test('a key outside Storage’s character set is InvalidKey', async () => {
    const { error } = await storage.from(privateBucket).upload('bad/ümlaut.txt', Buffer.from('x'));
    assertStorageError(error, 'InvalidKey', '400');
  });

  test('size and MIME limits: EntityTooLarge and InvalidMimeType, and nothing is stored', async () => {
    const files = storage.from(limitedBucket);
    const big = await files.upload('big.png', Buffer.alloc(1001, 1), { contentType: 'image/png' });
    assertStorageError(big.error, 'EntityTooLarge', '413');
    const bigBlob = await files.upload('big-blob.png', new Blob([Buffer.alloc(5000, 1)], { type: 'image/png' }));
    assertStorageError(bigBlob.error, 'EntityTooLarge', '413');
    const html = await files.upload('page.html', Buffer.from('<p>'), { contentType: 'text/html' });
    assertStorageError(html.error, 'InvalidMimeType', '415');
    assert.equal(html.error.message, 'mime type text/html is not supported');
    await ok(files.upload('fits.png', Buffer.alloc(1000, 1), { contentType: 'image/png' }));
    await ok(files.upload('note.txt', Buffer.from('t'), { contentType: 'text/plain;charset=UTF-8' }));
    const names = (await ok(files.list())).map((file) => file.name).sort();
    assert.deepEqual(names, ['fits.png', 'note.txt']);
  });

  test('a folder placeholder skips the MIME check but holds no bytes', async () => {
    const files = storage.from(limitedBucket);
    // application/x-empty is not in the bucket's allow-list; the marker is taken anyway.
    await ok(files.upload('empty-folder/.emptyFolderPlaceholder', Buffer.alloc(0), { contentType: 'application/x-empty' }));
    const sneaked = await files.upload('big/.emptyFolderPlaceholder', Buffer.alloc(5000, 1), { contentType: 'image/png' });
    assertStorageError(sneaked.error, 'EntityTooLarge', '413');
    const small = await files.upload('small/.emptyFolderPlaceholder', Buffer.from('x'), { contentType: 'text/plain' });
    assertStorageError(small.error, 'EntityTooLarge', '413');
    assert.equal((await files.exists('big/.emptyFolderPlaceholder')).data, false);
    const info = await ok(files.info('empty-folder/.emptyFolderPlaceholder'));
    assert.equal(info.size, 0);
  });

  test('a raw upload with an empty body stores an empty object; a form without a file is refused', async () => {
    const files = storage.from(privateBucket);
    await ok(files.upload('empty/raw.txt', Buffer.alloc(0), { contentType: 'text/plain' }));
    assert.equal((await ok(files.info('empty/raw.txt'))).size, 0);
    const form = new FormData();
    form.append('cacheControl', '3600');
    const response = await fetch(`${API_URL}/storage/v1/object/${privateBucket}/empty/form.txt`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SERVICE_ROLE_KEY}` },
      body: form,
    });
    assert.equal(response.status, 400);
    assert.deepEqual(await response.json(), {
      statusCode: '400',
      code: 'InvalidRequest',
      error: 'InvalidRequest',
      message: 'No content provided',
    });
    assert.equal((await files.exists('empty/form.txt')).data, false);
  });

  test('anon is AccessDenied by RLS when uploading to a bucket without policies', async () => {
    const { error } = await client(ANON_KEY).storage.from(privateBucket).upload('anon.txt', Buffer.from('x'));
    assertStorageError(error, 'AccessDenied', '403');
    assert.match(error.message, /row-level security/);
    const exists = await storage.from(privateBucket).exists('anon.txt');
    assert.equal(exists.data, false);
  });

  test('an expired JWT is AccessDenied with the verifier message', async () => {
    const token = signJwt({ sub: randomUUID(), role: 'authenticated', exp: Math.floor(Date.now() / 1000) - 600 });
    const expired = client(ANON_KEY, { global: { headers: { Authorization: `Bearer ${token}` } } });
    const { error } = await expired.storage.from(privateBucket).upload('x.txt', Buffer.from('x'));
    assertStorageError(error, 'AccessDenied', '403');
    assert.match(error.message, /expired/i);
  });

  test('the secret key works as a bearer like the service role', async () => {
    const files = client(SECRET_KEY).storage.from(privateBucket);
    await ok(files.upload('secret-key.txt', Buffer.from('k')));
    assert.equal(await text(await ok(files.download('secret-key.txt'))), 'k');
  });
});

describe('HTTP details of downloads', () => {
  const url = (path) => `${API_URL}/storage/v1/object/${publicBucket}/${path}`;

  before(async () => {
    await ok(
      storage
        .from(publicBucket)
        .upload('http/range.txt', Buffer.from('0123456789'), { contentType: 'text/plain', cacheControl: '120' }),
    );
  });

  test('headers: content type, length, ETag, cache control, accept-ranges', async () => {
    const response = await fetch(url('http/range.txt'));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/plain');
    assert.equal(response.headers.get('content-length'), '10');
    assert.equal(response.headers.get('cache-control'), 'max-age=120');
    assert.equal(response.headers.get('accept-ranges'), 'bytes');
    assert.match(response.headers.get('etag'), /^"[0-9a-f]{32}"$/);
    assert.ok(response.headers.get('last-modified'));
    assert.equal(await response.text(), '0123456789');
  });

  test('Range gives 206 with Content-Range; an impossible range is 416', async () => {
    const partial = await fetch(url('http/range.txt'), { headers: { range: 'bytes=2-5' } });
    assert.equal(partial.status, 206);
    assert.equal(partial.headers.get('content-range'), 'bytes 2-5/10');
    assert.equal(await partial.text(), '2345');
    const suffix = await fetch(url('http/range.txt'), { headers: { range: 'bytes=-3' } });
    assert.equal(await suffix.text(), '789');
    const bad = await fetch(url('http/range.txt'), { headers: { range: 'bytes=50-60' } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), 'bytes */10');
    assert.equal((await bad.json()).code, 'InvalidRange');
  });

  test('If-None-Match with the ETag is 304', async () => {
    const first = await fetch(url('http/range.txt'));
    const etag = first.headers.get('etag');
    await first.arrayBuffer();
    const again = await fetch(url('http/range.txt'), { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.headers.get('etag'), etag);
  });

  test('?download sets Content-Disposition', async () => {
    const plain = await fetch(`${url('http/range.txt')}?download`);
    assert.equal(plain.headers.get('content-disposition'), 'attachment;');
    await plain.arrayBuffer();
    const named = await fetch(`${url('http/range.txt')}?download=my%20file.txt`);
    assert.equal(
      named.headers.get('content-disposition'),
      "attachment; filename=my%20file.txt; filename*=UTF-8''my%20file.txt",
    );
    await named.arrayBuffer();
  });

  test('HEAD answers the headers without a body', async () => {
    const response = await fetch(url('http/range.txt'), { method: 'HEAD' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-length'), '10');
  });

  test('a private object without a token is NoSuchBucket for anon (no existence leak)', async () => {
    await ok(storage.from(privateBucket).upload('http/private.txt', Buffer.from('p')));
    const response = await fetch(`${API_URL}/storage/v1/object/${privateBucket}/http/private.txt`);
    assert.equal(response.status, 400);
    const body = await response.json();
    assert.deepEqual(body, {
      statusCode: '404',
      code: 'NoSuchBucket',
      error: 'Bucket not found',
      message: 'Bucket not found',
    });
  });
});

describe('list', () => {
  before(async () => {
    const files = storage.from(otherBucket);
    for (const name of ['list/b.txt', 'list/A.txt', 'list/sub/c.txt', 'list/sub/deeper/d.txt']) {
      await ok(files.upload(name, Buffer.from(name)));
    }
    // How the dashboard makes an empty folder: a zero-byte marker.
    await ok(files.upload('list/zz/.emptyFolderPlaceholder', Buffer.alloc(0)));
  });

  test('one level: folders synthesised from prefixes, names relative, name sort', async () => {
    const entries = await ok(storage.from(otherBucket).list('list'));
    assert.deepEqual(
      entries.map((entry) => [entry.name, entry.id === null]),
      [
        ['A.txt', false],
        ['b.txt', false],
        ['sub', true],
        ['zz', true],
      ],
    );
    const folder = entries.find((entry) => entry.name === 'sub');
    assert.equal(folder.metadata, null);
    const file = entries.find((entry) => entry.name === 'b.txt');
    assert.equal(file.metadata.size, 'list/b.txt'.length);
    assert.equal(file.metadata.mimetype, 'text/plain;charset=UTF-8');
  });

  test('search, limit/offset, descending sort and a deeper prefix', async () => {
    const files = storage.from(otherBucket);
    const search = await ok(files.list('list', { search: 'a' }));
    assert.deepEqual(search.map((entry) => entry.name), ['A.txt']);
    const paged = await ok(files.list('list', { limit: 2, offset: 1 }));
    assert.deepEqual(paged.map((entry) => entry.name), ['b.txt', 'sub']);
    const desc = await ok(files.list('list', { sortBy: { column: 'name', order: 'desc' } }));
    assert.deepEqual(desc.map((entry) => entry.name), ['zz', 'sub', 'b.txt', 'A.txt']);
    const deeper = await ok(files.list('list/sub'));
    assert.deepEqual(deeper.map((entry) => entry.name), ['c.txt', 'deeper']);
    const root = await ok(files.list());
    assert.deepEqual(root.map((entry) => entry.name), ['list']);
  });

  test('listV2 pages with a cursor and groups folders with a delimiter', async () => {
    const files = storage.from(otherBucket);
    const first = await ok(files.listV2({ prefix: 'list/', limit: 2 }));
    assert.equal(first.hasNext, true);
    assert.deepEqual(first.objects.map((object) => object.name), ['list/A.txt', 'list/b.txt']);
    const second = await ok(files.listV2({ prefix: 'list/', limit: 10, cursor: first.nextCursor }));
    assert.equal(second.hasNext, false);
    assert.deepEqual(second.objects.map((object) => object.name), [
      'list/sub/c.txt',
      'list/sub/deeper/d.txt',
      'list/zz/.emptyFolderPlaceholder',
    ]);
    const grouped = await ok(files.listV2({ prefix: 'list/', with_delimiter: true }));
    assert.deepEqual(grouped.folders.map((folder) => folder.name), ['list/sub/', 'list/zz/']);
    assert.deepEqual(grouped.objects.map((object) => object.name), ['list/A.txt', 'list/b.txt']);
  });
});

describe('remove, move, copy', () => {
  test('remove takes exact names, skips missing ones and returns what it deleted', async () => {
    const files = storage.from(privateBucket);
    await ok(files.upload('rm/one.txt', Buffer.from('1')));
    await ok(files.upload('rm/two.txt', Buffer.from('2')));
    const removed = await ok(files.remove(['rm/one.txt', 'rm/missing.txt', 'rm']));
    assert.deepEqual(removed.map((row) => row.name), ['rm/one.txt']);
    assert.equal(removed[0].bucket_id, privateBucket);
    assert.equal((await files.exists('rm/one.txt')).data, false);
    assert.equal((await files.exists('rm/two.txt')).data, true);
    assert.deepEqual(await ok(files.remove(['rm/one.txt'])), []);
  });

  test('move within a bucket and across buckets', async () => {
    const files = storage.from(privateBucket);
    await ok(files.upload('mv/src.txt', Buffer.from('moving')));
    const moved = await ok(files.move('mv/src.txt', 'mv/dst.txt'));
    assert.equal(moved.message, 'Successfully moved');
    assert.equal((await files.exists('mv/src.txt')).data, false);
    assert.equal(await text(await ok(files.download('mv/dst.txt'))), 'moving');
    await ok(files.move('mv/dst.txt', 'moved/elsewhere.txt', { destinationBucket: otherBucket }));
    assert.equal(await text(await ok(storage.from(otherBucket).download('moved/elsewhere.txt'))), 'moving');
    await ok(files.upload('mv/taken.txt', Buffer.from('a')));
    await ok(files.upload('mv/other.txt', Buffer.from('b')));
    const { error } = await files.move('mv/other.txt', 'mv/taken.txt');
    assertStorageError(error, 'ResourceAlreadyExists', '409');
    const missing = await files.move('mv/none.txt', 'mv/x.txt');
    assertStorageError(missing.error, 'NoSuchKey', '404');
  });

  test('copy across buckets keeps the source and gives the copy its own version', async () => {
    const files = storage.from(privateBucket);
    await ok(files.upload('cp/src.txt', Buffer.from('copy me'), { contentType: 'text/plain', metadata: { m: 1 } }));
    const copied = await ok(files.copy('cp/src.txt', 'cp/dst.txt', { destinationBucket: otherBucket }));
    assert.equal(copied.path, `${otherBucket}/cp/dst.txt`);
    const target = storage.from(otherBucket);
    assert.equal(await text(await ok(target.download('cp/dst.txt'))), 'copy me');
    const [source, copy] = [await ok(files.info('cp/src.txt')), await ok(target.info('cp/dst.txt'))];
    assert.equal(copy.contentType, 'text/plain');
    assert.deepEqual(copy.metadata, { m: 1 });
    assert.equal(copy.etag, source.etag);
    assert.notEqual(copy.version, source.version);
    const again = await files.copy('cp/src.txt', 'cp/dst.txt', { destinationBucket: otherBucket });
    assertStorageError(again.error, 'ResourceAlreadyExists', '409');
    // Changing the copy leaves the source alone.
    await ok(target.update('cp/dst.txt', Buffer.from('changed')));
    assert.equal(await text(await ok(files.download('cp/src.txt'))), 'copy me');
  });
});

describe('signed URLs', () => {
  before(async () => {
    await ok(storage.from(privateBucket).upload('signed/a file.txt', Buffer.from('signed content')));
    await ok(storage.from(privateBucket).upload('signed/b.txt', Buffer.from('b')));
  });

  test('createSignedUrl gives a URL anyone can fetch until it expires', async () => {
    const { signedUrl } = await ok(storage.from(privateBucket).createSignedUrl('signed/a file.txt', 60));
    assert.ok(signedUrl.startsWith(`${API_URL}/storage/v1/object/sign/${privateBucket}/signed/a%20file.txt?token=`), signedUrl);
    const response = await fetch(signedUrl);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'signed content');
    const download = await ok(storage.from(privateBucket).createSignedUrl('signed/b.txt', 60, { download: 'b-copy.txt' }));
    const attachment = await fetch(download.signedUrl);
    assert.match(attachment.headers.get('content-disposition'), /filename=b-copy\.txt/);
    await attachment.arrayBuffer();
  });

  test('a token for another path, a tampered token and an expired token are refused', async () => {
    const { signedUrl } = await ok(storage.from(privateBucket).createSignedUrl('signed/b.txt', 60));
    const token = new URL(signedUrl).searchParams.get('token');
    const other = await fetch(`${API_URL}/storage/v1/object/sign/${privateBucket}/signed/a%20file.txt?token=${token}`);
    assert.equal((await other.json()).code, 'InvalidSignature');
    const tampered = await fetch(`${API_URL}/storage/v1/object/sign/${privateBucket}/signed/b.txt?token=${token}x`);
    assert.equal((await tampered.json()).code, 'InvalidJWT');
    const now = Math.floor(Date.now() / 1000);
    const expired = signJwt({ url: `${privateBucket}/signed/b.txt`, scope: 'download', iat: now - 600, exp: now - 300 });
    const response = await fetch(`${API_URL}/storage/v1/object/sign/${privateBucket}/signed/b.txt?token=${expired}`);
    const body = await response.json();
    assert.equal(response.status, 400);
    assert.equal(body.code, 'InvalidJWT');
    assert.match(body.message, /expired/i);
  });

  test('createSignedUrl of a missing object is NoSuchKey', async () => {
    const { error } = await storage.from(privateBucket).createSignedUrl('signed/none.txt', 60);
    assertStorageError(error, 'NoSuchKey', '404');
  });

  test('createSignedUrls signs many, with a per-item error for missing ones', async () => {
    const items = await ok(storage.from(privateBucket).createSignedUrls(['signed/b.txt', 'signed/none.txt'], 60));
    assert.equal(items.length, 2);
    assert.equal(items[0].error, null);
    assert.equal(items[0].path, 'signed/b.txt');
    assert.equal(await (await fetch(items[0].signedUrl)).text(), 'b');
    assert.equal(items[1].signedUrl, null);
    assert.equal(items[1].error, 'Either the object does not exist or you do not have access to it');
  });

  test('createSignedUploadUrl + uploadToSignedUrl upload without other credentials', async () => {
    const files = storage.from(privateBucket);
    const signed = await ok(files.createSignedUploadUrl('signed-upload/new.txt'));
    assert.equal(signed.path, 'signed-upload/new.txt');
    assert.ok(signed.token);
    // A client holding only the anon key can use the token.
    const anonFiles = client(ANON_KEY).storage.from(privateBucket);
    const uploaded = await ok(
      anonFiles.uploadToSignedUrl('signed-upload/new.txt', signed.token, new Blob(['via token'], { type: 'text/plain' })),
    );
    assert.equal(uploaded.fullPath, `${privateBucket}/signed-upload/new.txt`);
    assert.equal(await text(await ok(files.download('signed-upload/new.txt'))), 'via token');
    // The token is bound to its path.
    const wrong = await anonFiles.uploadToSignedUrl('signed-upload/other.txt', signed.token, Buffer.from('x'));
    assertStorageError(wrong.error, 'InvalidSignature', '400');
    // Without upsert the token cannot replace what it created.
    const again = await anonFiles.uploadToSignedUrl('signed-upload/new.txt', signed.token, Buffer.from('y'));
    assertStorageError(again.error, 'ResourceAlreadyExists', '409');
    const upsertUrl = await ok(files.createSignedUploadUrl('signed-upload/new.txt', { upsert: true }));
    await ok(anonFiles.uploadToSignedUrl('signed-upload/new.txt', upsertUrl.token, Buffer.from('replaced')));
    assert.equal(await text(await ok(files.download('signed-upload/new.txt'))), 'replaced');
  });

  test('anon cannot create a signed upload URL where it may not write', async () => {
    const { error } = await client(ANON_KEY).storage.from(privateBucket).createSignedUploadUrl('x/y.txt');
    assertStorageError(error, 'AccessDenied', '403');
  });
});

describe('public URLs', () => {
  test('getPublicUrl of a public bucket can be fetched without a token', async () => {
    await ok(storage.from(publicBucket).upload('pub/hello.txt', Buffer.from('public hello'), { contentType: 'text/plain' }));
    const { data } = client(ANON_KEY).storage.from(publicBucket).getPublicUrl('pub/hello.txt');
    assert.equal(data.publicUrl, `${API_URL}/storage/v1/object/public/${publicBucket}/pub/hello.txt`);
    const response = await fetch(data.publicUrl);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'public hello');
    // Anon downloads from a public bucket through the authenticated route too.
    assert.equal(await text(await ok(client(ANON_KEY).storage.from(publicBucket).download('pub/hello.txt'))), 'public hello');
  });

  test('the public route of a private bucket is NoSuchBucket', async () => {
    const { data } = storage.from(privateBucket).getPublicUrl('signed/b.txt');
    const response = await fetch(data.publicUrl);
    assert.equal(response.status, 400);
    assert.equal((await response.json()).code, 'NoSuchBucket');
  });
});

describe('buckets under RLS as a signed-in user (tests/fixtures/0020_storage.sql policies)', () => {
  const sub = randomUUID();
  const user = userClient(sub).storage;
  const stranger = userClient(randomUUID()).storage;
  const own = `user-${run}`;
  const shared = `shared-${run}`;

  before(async () => {
    await ok(storage.createBucket(shared, { public: false }));
  });

  test('create, list and get: own and shared buckets are visible, others are not', async () => {
    assert.deepEqual(await ok(user.createBucket(own, { public: false })), { name: own });
    const refused = await user.createBucket(`other-${run}`);
    assertStorageError(refused.error, 'AccessDenied', '403');
    const ids = (await ok(user.listBuckets())).map((bucket) => bucket.id);
    assert.ok(ids.includes(own) && ids.includes(shared), ids.join());
    assert.ok(!ids.includes(privateBucket), 'buckets without a policy stay invisible');
    const bucket = await ok(user.getBucket(own));
    assert.equal(bucket.owner_id, sub);
    assert.equal(bucket.owner, sub);
    assertStorageError((await stranger.getBucket(own)).error, 'NoSuchBucket', '404');
    assertStorageError((await user.getBucket(privateBucket)).error, 'NoSuchBucket', '404');
  });

  test('update: the owner changes settings; a visible but not updatable bucket is NoSuchBucket', async () => {
    await ok(user.updateBucket(own, { public: false, fileSizeLimit: 4096 }));
    assert.equal((await ok(storage.getBucket(own))).file_size_limit, 4096);
    // The row passes SELECT but not UPDATE's USING: zero rows change, as on Supabase.
    assertStorageError((await user.updateBucket(shared, { public: false })).error, 'NoSuchBucket', '404');
    assertStorageError((await stranger.updateBucket(own, { public: false })).error, 'NoSuchBucket', '404');
    // UPDATE's WITH CHECK refuses the new row: a policy violation.
    const published = await user.updateBucket(own, { public: true });
    assertStorageError(published.error, 'AccessDenied', '403');
    assert.equal((await ok(storage.getBucket(own))).public, false);
  });

  test('empty: deletes what the caller may delete and names what it may only see', async () => {
    const files = user.from(own);
    await ok(files.upload('a.txt', Buffer.from('a')));
    await ok(files.upload('keep/b.txt', Buffer.from('b')));
    await ok(files.upload('keep/c.txt', Buffer.from('c')));
    assertStorageError((await stranger.emptyBucket(own)).error, 'NoSuchBucket', '404');
    const { error } = await user.emptyBucket(own);
    assertStorageError(error, 'AccessDenied', '403');
    assert.equal(error.message, 'Cannot delete: keep/b.txt ,keep/c.txt, you may have SELECT but not DELETE permissions');
    assert.equal((await files.exists('a.txt')).data, false);
    assert.equal((await files.exists('keep/b.txt')).data, true);
  });

  test('delete: refused while objects remain, invisible to others, then allowed to the owner', async () => {
    assertStorageError((await user.deleteBucket(own)).error, 'ResourceNotEmpty', '409');
    await ok(storage.emptyBucket(own));
    assertStorageError((await stranger.deleteBucket(own)).error, 'NoSuchBucket', '404');
    assertStorageError((await user.deleteBucket(shared)).error, 'NoSuchBucket', '404');
    assert.deepEqual(await ok(user.deleteBucket(own)), { message: 'Successfully deleted' });
    assertStorageError((await storage.getBucket(own)).error, 'NoSuchBucket', '404');
    assert.equal((await ok(storage.getBucket(shared))).id, shared);
  });
});

describe('parameter errors', () => {
  const post = async (path, body) => {
    const response = await fetch(`${API_URL}/storage/v1/${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SERVICE_ROLE_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 400);
    return response.json();
  };

  before(async () => {
    await ok(storage.from(privateBucket).upload('params/a.txt', Buffer.from('a')));
  });

  test('a missing required field or token is MissingParameter', async () => {
    assert.deepEqual(await post(`object/sign/${privateBucket}/params/a.txt`, {}), {
      statusCode: '400',
      code: 'MissingParameter',
      error: 'MissingParameter',
      message: 'Missing Required Parameter expiresIn',
    });
    const copy = await post('object/copy', { bucketId: privateBucket, sourceKey: 'params/a.txt' });
    assert.equal(copy.code, 'MissingParameter');
    assert.equal(copy.message, 'Missing Required Parameter destinationKey');
    const unsigned = await fetch(`${API_URL}/storage/v1/object/sign/${privateBucket}/params/a.txt`);
    assert.equal(unsigned.status, 400);
    const body = await unsigned.json();
    assert.equal(body.code, 'MissingParameter');
    assert.equal(body.message, 'Missing Required Parameter token');
  });

  test('a value of the wrong kind is InvalidParameter', async () => {
    const zero = await post(`object/sign/${privateBucket}/params/a.txt`, { expiresIn: 0 });
    assert.equal(zero.code, 'InvalidParameter');
    const sorted = await storage.listBuckets({ sortColumn: 'owner' });
    assertStorageError(sorted.error, 'InvalidParameter', '400');
    assert.equal(sorted.error.message, 'Invalid Parameter sortColumn');
    const listed = await storage.from(privateBucket).list('params', { sortBy: { column: 'size', order: 'asc' } });
    assertStorageError(listed.error, 'InvalidParameter', '400');
  });

  test('a policy’s failed cast (22P02) is InvalidParameter; an INSERT policy alone lets an upload through', async () => {
    const sub = randomUUID();
    const typed = userClient(sub).storage.from('typed');
    const { error } = await typed.upload('not-a-uuid/x.txt', Buffer.from('x'));
    assertStorageError(error, 'InvalidParameter', '400');
    assert.match(error.message, /invalid input syntax for type uuid/);
    await ok(typed.upload(`${sub}/x.txt`, Buffer.from('x')));
  });
});

describe('single delete, public info, missing buckets and time-sorted lists', () => {
  test('DELETE /object/{bucket}/{path} deletes one object, then is NoSuchKey', async () => {
    await ok(storage.from(privateBucket).upload('single/one.txt', Buffer.from('1')));
    const url = `${API_URL}/storage/v1/object/${privateBucket}/single/one.txt`;
    const headers = { authorization: `Bearer ${SERVICE_ROLE_KEY}` };
    const deleted = await fetch(url, { method: 'DELETE', headers });
    assert.equal(deleted.status, 200);
    assert.deepEqual(await deleted.json(), { message: 'Successfully deleted' });
    assert.equal((await storage.from(privateBucket).exists('single/one.txt')).data, false);
    const again = await fetch(url, { method: 'DELETE', headers });
    assert.equal(again.status, 400);
    assert.equal((await again.json()).code, 'NoSuchKey');
    const anon = await fetch(`${API_URL}/storage/v1/object/${privateBucket}/http/private.txt`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ANON_KEY}` },
    });
    assert.equal((await anon.json()).code, 'NoSuchKey');
  });

  test('GET /object/info/public/… answers without a token for public buckets only', async () => {
    await ok(storage.from(publicBucket).upload('info/pub.txt', Buffer.from('info'), { contentType: 'text/plain' }));
    const response = await fetch(`${API_URL}/storage/v1/object/info/public/${publicBucket}/info/pub.txt`);
    assert.equal(response.status, 200);
    const info = await response.json();
    assert.equal(info.name, 'info/pub.txt');
    assert.equal(info.bucket_id, publicBucket);
    assert.equal(info.size, 4);
    assert.equal(info.content_type, 'text/plain');
    await ok(storage.from(privateBucket).upload('info/priv.txt', Buffer.from('p')));
    const hidden = await fetch(`${API_URL}/storage/v1/object/info/public/${privateBucket}/info/priv.txt`);
    assert.equal(hidden.status, 400);
    assert.equal((await hidden.json()).code, 'NoSuchBucket');
  });

  test('remove and batch sign on a missing bucket find nothing, as on Supabase', async () => {
    const missing = storage.from(`missing-${run}`);
    assert.deepEqual(await ok(missing.remove(['a.txt'])), []);
    assert.deepEqual(await ok(missing.createSignedUrls(['a.txt'], 60)), [
      {
        error: 'Either the object does not exist or you do not have access to it',
        path: 'a.txt',
        signedUrl: null,
        signedURL: null,
      },
    ]);
  });

  test('list sorted by created_at or updated_at puts folders first, then files in time order', async () => {
    const files = storage.from(otherBucket);
    for (const name of ['time/first.txt', 'time/sub/x.txt', 'time/second.txt', 'time/third.txt']) {
      await ok(files.upload(name, Buffer.from(name)));
    }
    const names = async (column, order) =>
      (await ok(files.list('time', { sortBy: { column, order } }))).map((entry) => entry.name);
    assert.deepEqual(await names('created_at', 'asc'), ['sub', 'first.txt', 'second.txt', 'third.txt']);
    assert.deepEqual(await names('created_at', 'desc'), ['sub', 'third.txt', 'second.txt', 'first.txt']);
    await ok(files.update('time/first.txt', Buffer.from('touched')));
    assert.deepEqual(await names('updated_at', 'desc'), ['sub', 'first.txt', 'third.txt', 'second.txt']);
  });
});

describe('status', () => {
  test('/status and /version answer', async () => {
    assert.equal((await fetch(`${API_URL}/storage/v1/status`)).status, 200);
    const version = await fetch(`${API_URL}/storage/v1/version`);
    assert.match(await version.text(), /^\d+\.\d+\.\d+/);
  });
});
