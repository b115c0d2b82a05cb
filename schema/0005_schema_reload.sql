-- Reload the API's schema cache after DDL, as Supabase projects do for PostgREST: the event
-- triggers send `NOTIFY pgrst, 'reload schema'`. Creating event triggers needs a superuser;
-- without one (a managed external database) reloads come from explicit NOTIFYs instead.
create or replace function manifold.notify_schema_reload() returns event_trigger
language plpgsql
as $$
begin
  perform pg_notify('pgrst', 'reload schema');
end
$$;

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
