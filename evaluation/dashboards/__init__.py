"""The evaluation dashboards (leads). `metrics` is the pure core (Wilson intervals, Cohen/Fleiss/Krippendorff
agreement, confusion, lexical and embedding diversity, Elo and Bradley-Terry); `services` computes every
number the dashboards show in a worker and caches it per data version; `charts` draws server-rendered SVG and
`tables` turns the cached numbers into charts and CSV tables; `views`/`urls`/`forms` are the overview,
agreement and diversity pages, their CSV downloads and the Recompute button.
"""
