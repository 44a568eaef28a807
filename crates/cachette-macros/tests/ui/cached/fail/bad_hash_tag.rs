use cachette::cached;

// `{{user_id}}` is the literal text `{user_id}`: a tag around the value is `{{{user_id}}}`.
#[cached(key = "user:{{user_id}}:posts")]
async fn ambiguous(user_id: u64) -> u64 {
    user_id
}

// Redis Cluster reads only the first `{`: a second tag would not choose the slot.
#[cached(key = "{{{_tenant}}}:user:{{{user_id}}}")]
async fn two_tags(_tenant: String, user_id: u64) -> u64 {
    user_id
}

#[cached(key = "user:{{}}:{user_id}")]
async fn empty_tag(user_id: u64) -> u64 {
    user_id
}

#[cached(key = "user:{{{{user_id}}}}")]
async fn nested(user_id: u64) -> u64 {
    user_id
}

#[cached(key = "user:{{{user_id}:posts")]
async fn unclosed(user_id: u64) -> u64 {
    user_id
}

#[cached(key = "user:{user_id}}}:posts")]
async fn unopened(user_id: u64) -> u64 {
    user_id
}

fn main() {}
