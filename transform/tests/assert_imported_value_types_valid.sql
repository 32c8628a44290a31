-- Rows of the seed customer_value_imports must name a value type other than the reserved 'invoices'
-- (that one comes from invoiz) and carry an e-mail and an amount.
select *
from {{ ref('customer_value_imports') }}
where value_type is null
   or trim(value_type) = ''
   or lower(trim(value_type)) = 'invoices'
   or email is null
   or amount is null
