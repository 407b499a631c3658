"""`chaosctl experiment`: the seed study's configurations A-F under its five failure
scenarios, measured on this machine and set beside the paper's figures.

configs (switch sets as SHOP_* environment), scenarios (faults from chaosctl.chaos), paper
(the published figures), measure (metrics from recorded samples, pure), probe (what is read
from the stack: counters, breakers, the orders database), runner (the matrix; never prints,
emits events), report (the HTML page)."""
