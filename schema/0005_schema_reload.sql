-- Reload the API's schema cache after DDL, as Supabase projects do for PostgREST: the event
-- triggers send `NOTIFY pgrst, 'reload schema'`. Creating event triggers needs a superuser;
-- without one (a managed external database) reloads come from explicit NOTIFYs instead.
--
-- Each DDL also advances `manifold.schema_version`, so a request naming something the cache does
-- not know can ask cheaply whether the catalog changed since the cache was loaded, instead of
-- reloading blindly (and limiting those reloads by time).
create sequence if not exists manifold.schema_version;
grant usage on schema manifold to authenticator;
grant select on sequence manifold.schema_version to authenticator;

create or replace function manifold.notify_schema_reload() returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform nextval('manifold.schema_version');
  perform pg_notify('pgrst', 'reload schema');
end
$$;
revoke execute on function manifold.notify_schema_reload() from public;

do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user) then
    drop event trigger if exists manifold_reload_on_ddl;
    create event trigger manifold_reload_on_ddl on ddl_command_end
      execute function manifold.notify_schema_reload();
    drop event trigger if exists manifold_reload_on_drop;
    create event trigger manifold_reload_on_drop on sql_drop
      execute function manifold.notify_schema_reload();
  else
    raise notice 'not a superuser: schema-cache reloads need NOTIFY pgrst, ''reload schema''';
  end if;
end
$$;
