use cachette::cached;

#[cached(key = "user:{id:>5}")]
async fn format_spec(id: u64) -> u64 {
    id
}

#[cached(key = "user:{id")]
async fn unclosed(id: u64) -> u64 {
    id
}

#[cached(key = "user:}{id}:{}")]
async fn stray_brace(id: u64) -> u64 {
    id
}

#[cached(key = "user:{self.id}")]
async fn no_self(id: u64) -> u64 {
    id
}

fn main() {}
