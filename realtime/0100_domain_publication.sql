-- postgres_changes for the gas business: the dispatch board follows deliveries and routes, a
-- driver their own deliveries, dashboards cylinder status. bottle_events is high volume and is
-- not published. Every published domain table keeps full old rows: realtime authorizes a DELETE
-- (and an UPDATE that moves a row out of a subscriber's view, e.g. a stop reassigned to another
-- driver) on the committed old image, and a key-only old image has `organization_id` NULL, so
-- no policy would ever pass it and such changes would never be delivered.
alter table public.deliveries replica identity full;
alter table public.routes replica identity full;
alter table public.bottles replica identity full;
alter publication supabase_realtime add table public.deliveries, public.routes, public.bottles;
