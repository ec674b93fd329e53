"""Stand-ins for dbt's cross-database macros (``dbt.*``) when sqlfluff renders the models with
its jinja templater (dbt_project/.sqlfluff says why not the dbt templater). Each returns the
Postgres SQL dbt-postgres produces, so the linted SQL is the SQL that runs."""


def type_bigint():
    return "bigint"


def type_timestamp():
    return "timestamp"


def safe_cast(field, type_):
    return f"cast({field} as {type_})"


def concat(fields):
    return " || ".join(fields)


def hash(field):  # noqa: A001 - dbt's macro name
    return f"md5(cast({field} as text))"


def datediff(first_date, second_date, datepart):
    return f"(({second_date})::date - ({first_date})::date)"


def listagg(measure, delimiter_text="','", order_by_clause=None, limit_num=None):
    return f"string_agg({measure}, {delimiter_text} {order_by_clause or ''})"
