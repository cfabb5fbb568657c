//! Significance test for the error delta: is the train's error proportion higher than the
//! baseline's, beyond noise?
