use cachette::cached;

#[cached]
async fn distance((x, y): (i64, i64)) -> i64 {
    x.abs() + y.abs()
}

fn main() {}
