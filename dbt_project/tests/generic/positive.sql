{#- Fails for every row whose column is not strictly positive (nulls are ignored). -#}
{% test positive(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} <= 0

{% endtest %}
