use cachette::cached;

#[cached]
struct User;

fn main() {}
