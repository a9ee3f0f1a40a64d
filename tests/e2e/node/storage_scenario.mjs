// Drives a Supabase Storage endpoint with Supabase's official client, @supabase/storage-js, as an
// application would (tests/e2e/test_storage_js.py runs it and checks every step).
//
//   node storage_scenario.mjs objects   # every object and bucket operation (STORAGE_URL, SERVICE_KEY, ANON_KEY, BUCKET)
//   node storage_scenario.mjs signed    # one upload to a signed upload URL (STORAGE_URL, BUCKET, OBJECT_PATH, TOKEN, BODY_FILE, CONTENT_TYPE)
//
// Prints one JSON object: {step: {data, error}} where error is the client's StorageError
// ({name, message, status, statusCode, code}) and Blobs are read as {text, type, size}.
import { readFileSync } from 'node:fs'
import { StorageClient } from '@supabase/storage-js'

const env = (name) => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const results = {}

async function plain(value) {
  if (value instanceof Blob) {
    return { text: await value.text(), type: value.type, size: value.size }
  }
  return value
}

function describeError(error) {
  if (!error) return null
  return {
    name: error.name,
    message: error.message,
    status: error.status ?? null,
    statusCode: error.statusCode ?? null,
    code: error.code ?? null,
  }
}

// Runs one client call; records {data, error} (a thrown error is recorded, never fatal).
async function step(name, call) {
  try {
    const reply = await call()
    results[name] = { data: await plain(reply.data), error: describeError(reply.error) }
  } catch (error) {
    results[name] = { data: null, error: { ...describeError(error), thrown: true } }
  }
}

// A plain fetch of a URL the client built (signed or public), as a browser would load it.
async function fetched(name, url, headers = {}) {
  const reply = await fetch(url, { headers })
  const text = await reply.text()
  results[name] = {
    data: {
      status: reply.status,
      text,
      contentType: reply.headers.get('content-type'),
      contentDisposition: reply.headers.get('content-disposition'),
    },
    error: null,
  }
}

async function objects() {
  const url = env('STORAGE_URL')
  const service = new StorageClient(url, {
    apikey: env('SERVICE_KEY'),
    Authorization: `Bearer ${env('SERVICE_KEY')}`,
  })
  const anon = new StorageClient(url, { apikey: env('ANON_KEY') })
  const apikeyOnly = new StorageClient(url, { apikey: env('SERVICE_KEY') })
  const suffix = Math.random().toString(36).slice(2, 8)
  const priv = `js-private-${suffix}`
  const pub = `js-public-${suffix}`

  // Buckets.
  await step('createBucket', () =>
    service.createBucket(priv, {
      public: false,
      fileSizeLimit: 1024,
      allowedMimeTypes: ['text/plain', 'text/markdown', 'application/json'],
    })
  )
  await step('createBucketAgain', () => service.createBucket(priv, { public: false }))
  await step('createPublicBucket', () => service.createBucket(pub, { public: true }))
  await step('getBucket', () => service.getBucket(priv))
  await step('getMissingBucket', () => service.getBucket(`missing-${suffix}`))
  await step('listBuckets', () => service.listBuckets())
  await step('listBucketsApikeyOnly', () => apikeyOnly.listBuckets())
  await step('updateBucket', () =>
    service.updateBucket(priv, {
      public: false,
      fileSizeLimit: 2048,
      allowedMimeTypes: ['text/plain', 'text/markdown', 'application/json'],
    })
  )
  await step('getBucketUpdated', () => service.getBucket(priv))

  // Uploads: a string (raw body), a Blob and a File (multipart), upsert, update.
  const files = service.from(priv)
  await step('uploadString', () =>
    files.upload('notes/a.txt', 'alpha', { contentType: 'text/plain', cacheControl: '120' })
  )
  await step('uploadBlob', () =>
    files.upload('notes/b.md', new Blob(['# Bravo\n\nbody'], { type: 'text/markdown' }))
  )
  await step('uploadFile', () =>
    files.upload('notes/c.json', new File(['{"c": 3}'], 'c.json', { type: 'application/json' }))
  )
  await step('uploadDuplicate', () => files.upload('notes/a.txt', 'again', { contentType: 'text/plain' }))
  await step('uploadUpsert', () =>
    files.upload('notes/a.txt', new Blob(['alpha, upserted'], { type: 'text/plain' }), { upsert: true })
  )
  await step('update', () => files.update('notes/a.txt', new Blob(['alpha, updated'], { type: 'text/plain' })))
  await step('uploadWrongMime', () =>
    files.upload('notes/d.gif', new Blob(['GIF89a'], { type: 'image/gif' }))
  )
  await step('uploadTooLarge', () =>
    files.upload('notes/big.txt', new Blob(['x'.repeat(4096)], { type: 'text/plain' }))
  )
  await step('uploadInvalidKey', () => files.upload('notes/bad{key}.txt', 'x', { contentType: 'text/plain' }))
  await step('uploadAnon', () => anon.from(priv).upload('notes/anon.txt', 'x', { contentType: 'text/plain' }))
  await step('uploadMissingBucket', () =>
    service.from(`missing-${suffix}`).upload('a.txt', 'x', { contentType: 'text/plain' })
  )

  // Reads.
  await step('downloadA', () => files.download('notes/a.txt'))
  await step('downloadB', () => files.download('notes/b.md'))
  await step('downloadMissing', () => files.download('notes/missing.txt'))
  await step('downloadAnon', () => anon.from(priv).download('notes/a.txt'))
  await step('info', () => files.info('notes/b.md'))
  await step('existsYes', () => files.exists('notes/a.txt'))
  await step('existsNo', () => files.exists('notes/missing.txt'))

  // Listings.
  await step('listRoot', () => files.list())
  await step('listNotes', () => files.list('notes'))
  await step('listNotesDesc', () => files.list('notes', { sortBy: { column: 'name', order: 'desc' } }))
  await step('listNotesPage', () => files.list('notes', { limit: 1, offset: 1 }))
  await step('listNotesSearch', () => files.list('notes', { search: 'b' }))
  await step('listV2', () => files.listV2({ prefix: 'notes/' }))
  await step('listV2Root', () => files.listV2({ with_delimiter: true }))
  await step('listAnon', () => anon.from(priv).list('notes'))

  // Signed URLs: one, many, with download; a signed upload URL.
  await step('createSignedUrl', () => files.createSignedUrl('notes/a.txt', 60))
  if (results.createSignedUrl.data) await fetched('fetchSigned', results.createSignedUrl.data.signedUrl)
  await step('createSignedUrlDownload', () =>
    files.createSignedUrl('notes/b.md', 60, { download: 'bravo.md' })
  )
  if (results.createSignedUrlDownload.data)
    await fetched('fetchSignedDownload', results.createSignedUrlDownload.data.signedUrl)
  await step('createSignedUrls', () => files.createSignedUrls(['notes/a.txt', 'notes/missing.txt'], 60))
  if (results.createSignedUrls.data?.[0]?.signedUrl)
    await fetched('fetchSignedMany', results.createSignedUrls.data[0].signedUrl)
  await step('createSignedUploadUrl', () => files.createSignedUploadUrl('signed/up.txt'))
  const ticket = results.createSignedUploadUrl.data
  if (ticket) {
    await step('uploadToSignedUrl', () =>
      files.uploadToSignedUrl('signed/up.txt', ticket.token, new Blob(['via a signed URL'], { type: 'text/plain' }))
    )
    await step('uploadToSignedUrlAgain', () =>
      files.uploadToSignedUrl('signed/up.txt', ticket.token, new Blob(['twice'], { type: 'text/plain' }))
    )
    await step('downloadSignedUpload', () => files.download('signed/up.txt'))
  }

  // Move and copy.
  await step('move', () => files.move('notes/c.json', 'moved/c.json'))
  await step('downloadMoved', () => files.download('moved/c.json'))
  await step('downloadMovedAway', () => files.download('notes/c.json'))
  await step('copy', () => files.copy('notes/a.txt', 'copies/a.txt'))
  await step('downloadCopy', () => files.download('copies/a.txt'))
  await step('moveMissing', () => files.move('notes/missing.txt', 'moved/missing.txt'))

  // Public and private buckets through public URLs.
  await step('uploadPublic', () =>
    service.from(pub).upload('pub.txt', new Blob(['public words'], { type: 'text/plain' }))
  )
  await fetched('fetchPublic', service.from(pub).getPublicUrl('pub.txt').data.publicUrl)
  await fetched('fetchPublicDownload', service.from(pub).getPublicUrl('pub.txt', { download: true }).data.publicUrl)
  await fetched('fetchPublicOfPrivate', files.getPublicUrl('notes/a.txt').data.publicUrl)
  await step('downloadPublicAnon', () => anon.from(pub).download('pub.txt'))

  // Removal, then buckets emptied and deleted.
  await step('remove', () => files.remove(['notes/a.txt', 'notes/b.md', 'notes/missing.txt']))
  await step('listNotesAfterRemove', () => files.list('notes'))
  await step('deleteNonEmptyBucket', () => service.deleteBucket(pub))
  await step('emptyBucket', () => service.emptyBucket(pub))
  await step('deleteBucket', () => service.deleteBucket(pub))
  await step('emptyPrivate', () => service.emptyBucket(priv))
  await step('deletePrivate', () => service.deleteBucket(priv))
  await step('getDeletedBucket', () => service.getBucket(priv))
  results._buckets = { priv, pub }
}

async function signed() {
  const client = new StorageClient(env('STORAGE_URL'), {})
  const bytes = readFileSync(env('BODY_FILE'))
  const body = new Blob([bytes], { type: env('CONTENT_TYPE') })
  await step('uploadToSignedUrl', () =>
    client.from(env('BUCKET')).uploadToSignedUrl(env('OBJECT_PATH'), env('TOKEN'), body)
  )
}

const scenarios = { objects, signed }
const name = process.argv[2]
if (!scenarios[name]) {
  console.error(`usage: node storage_scenario.mjs ${Object.keys(scenarios).join('|')}`)
  process.exit(2)
}
await scenarios[name]()
console.log(JSON.stringify(results))
