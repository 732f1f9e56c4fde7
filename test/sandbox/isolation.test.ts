import {isolationSuite} from './isolation.suite'

isolationSuite('farm')
