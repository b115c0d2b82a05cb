-- Private channels and database-originated broadcasts, with Supabase's shapes:
-- `realtime.messages` (its RLS policies decide who may read and write a private topic),
-- `realtime.topic()` (the topic being checked), `realtime.send()` and the trigger helper
-- `realtime.broadcast_changes()`. Inserted messages reach subscribers through logical
-- replication (publication `manifold_realtime_messages`).

create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  id uuid not null default gen_random_uuid(),
  binary_payload bytea,
  primary key (id, inserted_at)
);

create index if not exists messages_inserted_at_topic_index
  on realtime.messages (inserted_at desc, topic);

alter table realtime.messages owner to supabase_realtime_admin;
alter table realtime.messages enable row level security;

grant select, insert, update on realtime.messages to anon, authenticated;
grant all on realtime.messages to service_role;

-- The topic a private-channel check or `realtime.send` is about.
create or replace function realtime.topic() returns text
language sql stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text
$$;

grant execute on function realtime.topic() to anon, authenticated, service_role;

-- Broadcasts `payload` as `event` on `topic` (private by default, as Supabase). Failures are
-- reported as a warning and never abort the caller's transaction.
create or replace function realtime.send(
  payload jsonb, event text, topic text, private boolean default true
) returns void
language plpgsql
as $$
begin
  begin
    perform set_config('realtime.topic', topic, true);
    insert into realtime.messages (payload, event, topic, private, extension)
    values (payload, event, topic, private, 'broadcast');
  exception when others then
    raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
end
$$;

grant execute on function realtime.send(jsonb, text, text, boolean)
  to anon, authenticated, service_role;

-- For row triggers: broadcasts the change as {old_record, record, operation, table, schema}.
create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text default 'ROW'
) returns void
language plpgsql
as $$
declare
  row_data jsonb;
begin
  if level = 'STATEMENT' then
    raise exception 'function can only be triggered for each row, not for each statement';
  end if;
  if operation not in ('INSERT', 'UPDATE', 'DELETE') then
    raise exception 'Unexpected operation type: %', operation;
  end if;
  row_data := jsonb_build_object(
    'old_record', old, 'record', new, 'operation', operation,
    'table', table_name, 'schema', table_schema
  );
  perform realtime.send(row_data, event_name, topic_name);
end
$$;

grant execute on function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
  to anon, authenticated, service_role;

-- Canonical text of a value as a type: how subscription filters are normalized, so the server
-- compares them with the WAL's text output. Only the server (superuser) calls it.
create or replace function realtime.cast_text(value text, type_oid oid) returns text
language plpgsql stable
as $$
declare
  result text;
begin
  execute format('select (%L::%s)::text', value, type_oid::regtype) into result;
  return result;
end
$$;

revoke all on function realtime.cast_text(text, oid) from public;

do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'manifold_realtime_messages') then
    create publication manifold_realtime_messages for table realtime.messages
      with (publish = 'insert');
  end if;
end
$$;
