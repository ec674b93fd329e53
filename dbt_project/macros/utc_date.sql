{#-
  The UTC calendar date of a timestamptz, independent of the session TimeZone.
  `date_trunc`/`::date` on a timestamptz use the session time zone, which differs between
  clients; `AT TIME ZONE 'UTC'` turns the instant into its UTC wall-clock time first.
  Works on Postgres and Redshift; dispatched so another adapter can override it.
-#}
{% macro utc_date(ts) -%}
    {{ return(adapter.dispatch('utc_date', 'lifecycle')(ts)) }}
{%- endmacro %}

{% macro default__utc_date(ts) -%}
    cast(({{ ts }} at time zone 'UTC') as date)
{%- endmacro %}
