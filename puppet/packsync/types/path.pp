# An absolute path (the module needs no stdlib for this one type).
type Packsync::Path = Pattern[/\A\//]
