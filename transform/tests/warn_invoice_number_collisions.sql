-- R5: an invoice number used by more than one invoice (in two accounts, or twice in one) is worth a look,
-- but never an error: invoices are keyed by account and id. Warns with the number of colliding numbers.
{{ config(severity = 'warn') }}

select * from {{ ref('invoice_number_collisions') }}
