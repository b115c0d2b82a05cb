// Issue 3: the REST read path through the real supabase-js, against tests/fixtures/0001_rest.sql
// (schema `fixtures`, chosen with .schema(), which sends Accept-Profile).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { API_URL, ANON_KEY, SERVICE_ROLE_KEY, client, userClient } from './env.mjs';

const db = () => client().schema('fixtures');
const ids = (rows) => rows.map((row) => row.id);

async function peopleIds(build) {
  const { data, error, status } = await build(db().from('people').select('id')).order('id');
  assert.equal(error, null, JSON.stringify(error));
  assert.equal(status, 200);
  return ids(data);
}

describe('filters: every operator', () => {
  const cases = [
    ['eq', (q) => q.eq('age', 25), [2]],
    ['neq', (q) => q.neq('age', 25), [1, 3, 5]],
    ['gt', (q) => q.gt('age', 30), [1, 3]],
    ['gte', (q) => q.gte('age', 33), [1, 3]],
    ['lt', (q) => q.lt('age', 25), [5]],
    ['lte', (q) => q.lte('age', 25), [2, 5]],
    ['like', (q) => q.like('name', '%o%'), [2, 3]],
    ['like with *', (q) => q.filter('name', 'like', '*o*'), [2, 3]],
    ['ilike', (q) => q.ilike('name', '%A%'), [1, 3, 4]],
    ['match', (q) => q.regexMatch('name', '^[AB]'), [1, 2]],
    ['imatch', (q) => q.regexIMatch('name', '^[ab]'), [1, 2]],
    ['is null', (q) => q.is('manager_id', null), [1]],
    ['is true', (q) => q.is('active', true), [1, 2, 5]],
    ['is false', (q) => q.is('active', false), [3]],
    ['not is null', (q) => q.not('email', 'is', null), [1, 2, 4, 5]],
    ['isdistinct', (q) => q.isDistinct('age', 25), [1, 3, 4, 5]],
    ['in', (q) => q.in('id', [1, 3, 5]), [1, 3, 5]],
    ['in with quoted values', (q) => q.in('name', ['Alice', 'x,y', 'p(q)']), [1]],
    ['notIn', (q) => q.notIn('name', ['Alice', 'Bob']), [3, 4, 5]],
    ['in empty list', (q) => q.in('id', []), []],
    ['cs array', (q) => q.contains('tags', ['ops']), [1, 2, 5]],
    ['cd array', (q) => q.containedBy('tags', ['dev', 'ops']), [2, 3, 4, 5]],
    ['ov array', (q) => q.overlaps('tags', ['admin', 'dev']), [1, 3, 5]],
    ['cs jsonb', (q) => q.contains('profile', { lang: 'no' }), [1, 2]],
    ['sl', (q) => q.rangeLt('period', '[20,30)'), [1, 2, 5]],
    ['sr', (q) => q.rangeGt('period', '[1,10)'), [2, 3]],
    ['nxr', (q) => q.rangeLte('period', '[1,15)'), [1, 5]],
    ['nxl', (q) => q.rangeGte('period', '[10,30)'), [2, 3]],
    ['adj', (q) => q.rangeAdjacent('period', '[10,20)'), [1, 3]],
    ['plfts on tsvector', (q) => q.textSearch('search', 'cat', { type: 'plain', config: 'english' }), [1, 2, 5]],
    ['wfts', (q) => q.textSearch('search', 'cat -dogs', { type: 'websearch', config: 'english' }), [2, 5]],
    ['phfts', (q) => q.textSearch('search', 'fast cat', { type: 'phrase', config: 'english' }), [5]],
    ['fts', (q) => q.textSearch('search', 'cat & dog', { config: 'english' }), [1]],
    ['fts on a text column', (q) => q.textSearch('bio', 'code', { type: 'plain', config: 'english' }), [3]],
    ['like(any)', (q) => q.likeAnyOf('name', ['A%', 'B%']), [1, 2]],
    ['like(all)', (q) => q.likeAllOf('name', ['%a%', '%e%']), [4]],
    ['ilike(any)', (q) => q.ilikeAnyOf('name', ['%EVE%', 'bo%']), [2, 5]],
    ['not', (q) => q.not('age', 'gt', 30), [2, 5]],
    ['match object', (q) => q.match({ team_id: 1, active: true }), [1, 2]],
    ['json path ->>', (q) => q.eq('profile->>city', 'Oslo'), [1, 5]],
    ['json path ->', (q) => q.filter('profile->lang', 'eq', '"fr"'), [3]],
    ['mixed-case column', (q) => q.eq('MixedCase', 'a'), [1]],
    ['repeated keys AND together', (q) => q.gt('id', 1).lt('id', 4), [2, 3]],
  ];
  for (const [name, build, expected] of cases) {
    test(name, async () => {
      assert.deepEqual(await peopleIds(build), expected);
    });
  }

  test('or with nesting and quoted values', async () => {
    assert.deepEqual(await peopleIds((q) => q.or('age.lt.20,and(age.gt.40,active.is.true)')), [1, 5]);
    assert.deepEqual(await peopleIds((q) => q.or('name.eq.Bob,email.eq."weird,value"')), [2]);
    assert.deepEqual(await peopleIds((q) => q.or('id.eq.1').or('id.eq.2,id.eq.3')), []);
  });

  test('negated logic trees', async () => {
    const response = await fetch(`${API_URL}/rest/v1/people?select=id&not.or=(id.eq.1,id.eq.2)&order=id`, {
      headers: { apikey: ANON_KEY, 'accept-profile': 'fixtures' },
    });
    assert.equal(response.status, 200);
    assert.deepEqual(ids(await response.json()), [3, 4, 5]);
  });
});

describe('embedding', () => {
  test('many-to-one with an alias', async () => {
    const { data, error } = await db().from('people').select('name, team:teams(name)').order('id');
    assert.equal(error, null);
    assert.deepEqual(data, [
      { name: 'Alice', team: { name: 'Red' } },
      { name: 'Bob', team: { name: 'Red' } },
      { name: 'Carol', team: { name: 'Blue' } },
      { name: 'Dave', team: { name: 'Blue' } },
      { name: 'Eve', team: null },
    ]);
  });

  test('one-to-many ordered on the referenced table', async () => {
    const { data, error } = await db()
      .from('teams')
      .select('name, people(name)')
      .order('id')
      .order('name', { referencedTable: 'people', ascending: false });
    assert.equal(error, null);
    assert.deepEqual(data, [
      { name: 'Red', people: [{ name: 'Bob' }, { name: 'Alice' }] },
      { name: 'Blue', people: [{ name: 'Dave' }, { name: 'Carol' }] },
      { name: 'Empty', people: [] },
    ]);
  });

  test('self-reference: parent by column name, children by table name or hint', async () => {
    const hinted = await db().from('people').select('name, reports:people!manager_id(name)').eq('id', 1);
    assert.deepEqual(hinted.data, [{ name: 'Alice', reports: [{ name: 'Bob' }, { name: 'Carol' }] }]);
    const { data, error } = await db()
      .from('people')
      .select('name, manager:manager_id(name), reports:people(name)')
      .in('id', [1, 3])
      .order('id')
      .order('id', { referencedTable: 'people' });
    assert.equal(error, null);
    assert.deepEqual(data, [
      { name: 'Alice', manager: null, reports: [{ name: 'Bob' }, { name: 'Carol' }] },
      { name: 'Carol', manager: { name: 'Alice' }, reports: [{ name: 'Dave' }, { name: 'Eve' }] },
    ]);
  });

  test('many-to-many through a junction, nested', async () => {
    const { data, error } = await db()
      .from('teams')
      .select('name, people(name, projects(title))')
      .eq('id', 2)
      .order('id', { referencedTable: 'people' })
      .order('title', { referencedTable: 'people.projects' });
    assert.equal(error, null);
    assert.deepEqual(data, [
      {
        name: 'Blue',
        people: [
          { name: 'Carol', projects: [{ title: 'Atlas' }, { title: 'Borealis' }] },
          { name: 'Dave', projects: [] },
        ],
      },
    ]);
  });

  test('!inner with a filter on the embed removes parents', async () => {
    const { data, error } = await db()
      .from('people')
      .select('name, teams!inner(name)')
      .eq('teams.name', 'Blue')
      .order('id');
    assert.equal(error, null);
    assert.deepEqual(data, [
      { name: 'Carol', teams: { name: 'Blue' } },
      { name: 'Dave', teams: { name: 'Blue' } },
    ]);
  });

  test('a filter on a left embed only nulls the embed', async () => {
    const { data } = await db().from('people').select('id, teams(name)').eq('teams.name', 'Blue').order('id');
    assert.deepEqual(data.map((row) => row.teams?.name ?? null), [null, null, 'Blue', 'Blue', null]);
  });

  test('or and limit on a referenced table', async () => {
    const { data, error } = await db()
      .from('teams')
      .select('name, people(name)')
      .or('age.gt.40,age.lt.26', { referencedTable: 'people' })
      .order('id')
      .order('id', { referencedTable: 'people' })
      .limit(1, { referencedTable: 'people' });
    assert.equal(error, null);
    assert.deepEqual(data, [
      { name: 'Red', people: [{ name: 'Alice' }] },
      { name: 'Blue', people: [] },
      { name: 'Empty', people: [] },
    ]);
  });

  test('order by a column of a to-one embed', async () => {
    const ascending = await db().from('people').select('name, teams(name)').order('teams(name)').order('id');
    assert.equal(ascending.error, null);
    // Ascending puts the person without a team last, as PostgreSQL does.
    assert.deepEqual(
      ascending.data.map((row) => [row.name, row.teams?.name ?? null]),
      [['Carol', 'Blue'], ['Dave', 'Blue'], ['Alice', 'Red'], ['Bob', 'Red'], ['Eve', null]],
    );
    const descending = await db()
      .from('people')
      .select('name, team:teams(name)')
      .order('team(name)', { ascending: false, nullsFirst: false })
      .order('id');
    assert.equal(descending.error, null);
    assert.deepEqual(descending.data.map((row) => row.name), ['Alice', 'Bob', 'Carol', 'Dave', 'Eve']);
  });

  test('offset and limit per embedded resource', async () => {
    const { data, error } = await db()
      .from('teams')
      .select('name, people(name)')
      .order('id')
      .order('id', { referencedTable: 'people' })
      .range(1, 1, { referencedTable: 'people' });
    assert.equal(error, null);
    assert.deepEqual(data, [
      { name: 'Red', people: [{ name: 'Bob' }] },
      { name: 'Blue', people: [{ name: 'Dave' }] },
      { name: 'Empty', people: [] },
    ]);
  });

  test('spread to-one and to-many', async () => {
    const one = await db().from('people').select('name, ...teams(team:name)').lte('id', 2).order('id');
    assert.deepEqual(one.data, [
      { name: 'Alice', team: 'Red' },
      { name: 'Bob', team: 'Red' },
    ]);
    const many = await db()
      .from('teams')
      .select('name, ...people(names:name)')
      .eq('id', 1)
      .order('id', { referencedTable: 'people' });
    assert.deepEqual(many.data, [{ name: 'Red', names: ['Alice', 'Bob'] }]);
  });

  test('embedding through a view', async () => {
    const { data, error } = await db().from('people_names').select('name, teams(name)').eq('name', 'Carol');
    assert.equal(error, null);
    assert.deepEqual(data, [{ name: 'Carol', teams: { name: 'Blue' } }]);
  });

  test('disambiguation by column hint', async () => {
    const { data, error } = await db()
      .from('messages')
      .select('body, sender:people!sender_id(name), recipient:people!recipient_id(name)')
      .order('id');
    assert.equal(error, null);
    assert.deepEqual(data, [
      { body: 'hi Bob', sender: { name: 'Alice' }, recipient: { name: 'Bob' } },
      { body: 'hi Alice', sender: { name: 'Bob' }, recipient: { name: 'Alice' } },
    ]);
  });
});

describe('selects and modifiers', () => {
  test('JSON paths and casts', async () => {
    const { data, error } = await db()
      .from('people')
      .select('name, city:profile->>city, profile->langs->0, age::text')
      .eq('id', 1);
    assert.equal(error, null);
    assert.deepEqual(data, [{ name: 'Alice', city: 'Oslo', langs: 'no', age: '41' }]);
  });

  test('range with an exact count', async () => {
    const { data, count, status, error } = await db()
      .from('people')
      .select('id', { count: 'exact' })
      .order('id')
      .range(1, 2);
    assert.equal(error, null);
    assert.equal(status, 206);
    assert.equal(count, 5);
    assert.deepEqual(ids(data), [2, 3]);
  });

  test('Content-Range in its forms', async () => {
    const get = (query, prefer) =>
      fetch(`${API_URL}/rest/v1/people?${query}`, {
        headers: { apikey: ANON_KEY, 'accept-profile': 'fixtures', ...(prefer ? { prefer } : {}) },
      });
    let response = await get('select=id&order=id&limit=2');
    assert.equal(response.headers.get('content-range'), '0-1/*');
    assert.equal(response.headers.get('content-profile'), 'fixtures');
    response = await get('select=id&order=id&offset=1&limit=2', 'count=exact');
    assert.equal(response.status, 206);
    assert.equal(response.headers.get('content-range'), '1-2/5');
    response = await get('select=id&id=gt.100', 'count=exact');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-range'), '*/0');
    response = await get('select=id&offset=10', 'count=exact');
    assert.equal(response.status, 416);
    assert.deepEqual(await response.json(), {
      code: 'PGRST103',
      details: 'An offset of 10 was requested, but there are only 5 rows.',
      hint: null,
      message: 'Requested range not satisfiable',
    });
  });

  test('single and maybeSingle', async () => {
    const single = await db().from('people').select('id, name').eq('id', 2).single();
    assert.deepEqual(single.data, { id: 2, name: 'Bob' });
    const many = await db().from('people').select('id').single();
    assert.equal(many.status, 406);
    assert.deepEqual(many.error, {
      code: 'PGRST116',
      details: 'The result contains 5 rows',
      hint: null,
      message: 'Cannot coerce the result to a single JSON object',
    });
    const none = await db().from('people').select('id').eq('id', 99).maybeSingle();
    assert.equal(none.error, null);
    assert.equal(none.data, null);
    const one = await db().from('people').select('id').eq('id', 5).maybeSingle();
    assert.deepEqual(one.data, { id: 5 });
  });

  test('count with head returns no body', async () => {
    const { data, count, status, error } = await db()
      .from('people')
      .select('*', { count: 'exact', head: true })
      .gt('age', 20);
    assert.equal(error, null);
    assert.equal(status, 200);
    assert.equal(count, 3);
    assert.equal(data, null);
  });

  test('csv', async () => {
    const { data, error } = await db().from('teams').select('id, name').order('id').csv();
    assert.equal(error, null);
    assert.equal(data, 'id,name\n1,Red\n2,Blue\n3,Empty');
  });

    test('getOpenApiSpec describes the schema', async () => {
    const { data, error } = await db().getOpenApiSpec();
    assert.equal(error, null);
    assert.equal(data.swagger, '2.0');
    assert.equal(data.basePath, '/rest/v1');
    assert.deepEqual(Object.keys(data.paths['/teams']).sort(), ['delete', 'get', 'patch', 'post']);
    assert.ok(data.paths['/people_names'].get);
    assert.equal(data.definitions.people.properties.id.description, 'Note:\nThis is a Primary Key.<pk/>');
    assert.equal(
      data.definitions.people.properties.team_id.description,
      "Note:\nThis is a Foreign Key to `teams.id`.<fk table='teams' column='id'/>",
    );
    assert.deepEqual(data.definitions.teams.required, ['id', 'name']);
  });

  test('the default schema is public; an unknown profile is refused', async () => {
    const { error, status } = await client().schema('nope').from('teams').select();
    assert.equal(status, 406);
    assert.deepEqual(error, {
      code: 'PGRST106',
      details: null,
      hint: 'Only the following schemas are exposed: public, fixtures',
      message: 'Invalid schema: nope',
    });
  });
});

describe('errors', () => {
  test('unknown column', async () => {
    const { error, status } = await db().from('people').select('id, nope');
    assert.equal(status, 400);
    assert.deepEqual(error, {
      code: '42703',
      details: null,
      hint: null,
      message: 'column people.nope does not exist',
    });
  });

  test('bad operator', async () => {
    const { error, status } = await db().from('people').select('id').filter('age', 'foo', '1');
    assert.equal(status, 400);
    assert.deepEqual(error, {
      code: 'PGRST100',
      details: 'unexpected "f" expecting "not" or operator (eq, gt, ...)',
      hint: null,
      message: '"failed to parse filter (foo.1)" (line 1, column 1)',
    });
  });

  test('an operator other than is.null on an embed: PGRST120', async () => {
    const { error, status } = await db().from('people').select('id, teams(name)').eq('teams', 1);
    assert.equal(status, 400);
    assert.deepEqual(error, {
      code: 'PGRST120',
      details: 'Only is null or not is null filters are allowed on embedded resources',
      hint: null,
      message: "Bad operator on the 'teams' embedded resource",
    });
  });

  test('the root answers only GET and HEAD', async () => {
    for (const method of ['POST', 'PATCH', 'PUT', 'DELETE']) {
      const response = await fetch(`${API_URL}/rest/v1/`, {
        method,
        headers: { apikey: ANON_KEY, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(response.status, 405, method);
      assert.deepEqual(await response.json(), {
        code: 'PGRST117',
        details: null,
        hint: null,
        message: `Unsupported HTTP method: ${method}`,
      });
    }
  });

  test('ambiguous embed', async () => {
    const { error, status } = await db().from('messages').select('body, people(name)');
    assert.equal(status, 300);
    assert.deepEqual(error, {
      code: 'PGRST201',
      details: [
        {
          cardinality: 'many-to-one',
          embedding: 'messages with people',
          relationship: 'messages_recipient_id_fkey using messages(recipient_id) and people(id)',
        },
        {
          cardinality: 'many-to-one',
          embedding: 'messages with people',
          relationship: 'messages_sender_id_fkey using messages(sender_id) and people(id)',
        },
      ],
      hint: "Try changing 'people' to one of the following: 'people!messages_recipient_id_fkey', 'people!messages_sender_id_fkey'. Find the desired relationship in the 'details' key.",
      message: "Could not embed because more than one relationship was found for 'messages' and 'people'",
    });
  });

  test('no relationship', async () => {
    const { error, status } = await db().from('teams').select('name, projects(title)');
    assert.equal(status, 400);
    assert.equal(error.code, 'PGRST200');
    assert.equal(error.message, "Could not find a relationship between 'teams' and 'projects' in the schema cache");
    assert.equal(
      error.details,
      "Searched for a foreign key relationship between 'teams' and 'projects' in the schema 'fixtures', but no matches were found.",
    );
  });

  test('unknown table, with a suggestion', async () => {
    const { error, status } = await db().from('peple').select();
    assert.equal(status, 404);
    assert.deepEqual(error, {
      code: 'PGRST205',
      details: null,
      hint: "Perhaps you meant the table 'fixtures.people'",
      message: "Could not find the table 'fixtures.peple' in the schema cache",
    });
  });

  test('permission denied: 401 as anon, 403 as a user', async () => {
    const anon = await db().from('notes').select();
    assert.equal(anon.status, 401);
    assert.deepEqual(anon.error, {
      code: '42501',
      details: null,
      hint: null,
      message: 'permission denied for table notes',
    });
    const user = await userClient('11111111-1111-1111-1111-111111111111').schema('fixtures').from('secrets').select();
    assert.equal(user.status, 403);
    assert.equal(user.error.code, '42501');
    assert.equal(user.error.message, 'permission denied for table secrets');
  });

  test('row-level security decides which rows each user sees', async () => {
    const first = await userClient('11111111-1111-1111-1111-111111111111').schema('fixtures').from('notes').select('id').order('id');
    assert.deepEqual(ids(first.data), [1, 2]);
    const second = await userClient('22222222-2222-2222-2222-222222222222').schema('fixtures').from('notes').select('id');
    assert.deepEqual(ids(second.data), [3]);
    const service = await client(SERVICE_ROLE_KEY).schema('fixtures').from('notes').select('id').order('id');
    assert.deepEqual(ids(service.data), [1, 2, 3]);
  });

  test('an expired token is refused with PostgREST wording', async () => {
    const expired = userClient('11111111-1111-1111-1111-111111111111', { exp: Math.floor(Date.now() / 1000) - 120 });
    const { error, status } = await expired.schema('fixtures').from('teams').select();
    assert.equal(status, 401);
    assert.deepEqual(error, { code: 'PGRST303', details: null, hint: null, message: 'JWT expired' });
  });
});
