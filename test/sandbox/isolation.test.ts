import {isolationSuite} from './isolation.suite'

isolationSuite('farm')
isolationSuite('host')
