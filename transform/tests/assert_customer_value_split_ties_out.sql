-- Per invoice and per customer, the value splits exactly into open + paid + uncollectible + unclassified,
-- and the ticket view sums to the customer's invoice value. Returns offending rows.
select 'invoice' as level, invoice_key as id, value_amount as expected,
       open_amount + paid_amount + uncollectible_amount + unclassified_amount as actual
from {{ ref('int_invoiz__invoices') }}
where counts_toward_value
  and value_amount <> open_amount + paid_amount + uncollectible_amount + unclassified_amount

union all

select 'customer', email, invoice_value,
       open_amount + paid_amount + uncollectible_amount + unclassified_amount
from {{ ref('customer_values') }}
where invoice_value <> open_amount + paid_amount + uncollectible_amount + unclassified_amount

union all

select 'ticket_view', cv.email, cv.invoice_value, coalesce(tv.amount, 0)
from {{ ref('customer_values') }} as cv
left join (
    select email, sum(amount) as amount
    from {{ ref('customer_invoices') }}
    where counts_toward_value
    group by email
) as tv on tv.email = cv.email
where cv.is_invoiz_customer
  and cv.invoice_value <> coalesce(tv.amount, 0)
