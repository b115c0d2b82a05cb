-- postgres_changes for the gas business: the dispatch board follows deliveries and routes, a
-- driver their own deliveries, dashboards cylinder status. bottle_events is high volume and is
-- not published. Deliveries and routes keep full old rows so a change that moves a row out of a
-- subscriber's view (a stop reassigned to another driver) can still be checked against RLS.
alter table public.deliveries replica identity full;
alter table public.routes replica identity full;
alter publication supabase_realtime add table public.deliveries, public.routes, public.bottles;
